"""`make test` runs the serial tests by the modules whose source marks them; a test marked serial
any other way would run in neither part, so the test plugin refuses it at collection."""

import subprocess

import pytest

from fullstackagent.testing import plugin


class Item:
    def __init__(self, path, serial):
        self.path, self.nodeid, self.serial = path, f"{path.name}::test_x", serial

    def get_closest_marker(self, name):
        return object() if name == "serial" and self.serial else None


def test_a_serial_test_not_marked_in_its_modules_source_is_refused(tmp_path):
    marked = tmp_path / "test_marked.py"
    marked.write_text("import pytest\n\npytestmark = pytest.mark.serial\n\n\ndef test_x():\n    pass\n")
    unmarked = tmp_path / "test_unmarked.py"
    unmarked.write_text("def test_x():\n    pass\n")

    plugin.pytest_collection_modifyitems(None, None, [Item(marked, True), Item(unmarked, False)])
    with pytest.raises(pytest.UsageError, match=r"test_unmarked.py::test_x is marked serial"):
        plugin.pytest_collection_modifyitems(None, None, [Item(marked, True), Item(unmarked, True)])


def test_the_makefile_names_the_serial_modules_and_caches_bytecode():
    commands = subprocess.run(["make", "-n", "test"], capture_output=True, text=True, check=True).stdout.splitlines()
    serial = next(line for line in commands if "-m serial" in line)
    assert "tests/foundation/test_database_outage.py" in serial.split()
    assert "tests/foundation/test_threaded_http.py" in serial.split()  # one test marked, not the module
    assert all(line.startswith("env -u PYTHONDONTWRITEBYTECODE ") for line in commands if " -m pytest " in line)
