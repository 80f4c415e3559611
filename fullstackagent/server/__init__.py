"""The production web server's processes: ``python -m fullstackagent.server.serve`` runs one web
process (uvicorn, fullstackagent.server.web_process) per CPU on one port, each restarted by
fullstackagent.server.supervise when it exits. The ASGI application they serve is
fullstackagent.asgi (with fullstackagent.threaded_http, part of that application, not of the
processes)."""
