"""Forms of the project pages: free-form variables (Environment, Secrets) and the fixed keys of the
Auth and Payment pages. They validate with projects.services.validate_variable, so the pages and
the API refuse exactly the same things."""

from dataclasses import dataclass

from django import forms
from django.core.exceptions import ValidationError

from projects import services
from projects.models import EnvironmentCategory


@dataclass(frozen=True)
class FixedVariable:
    key: str
    label: str
    secret: bool
    help: str = ""
    generated: bool = False  # the page offers "Generate" (a server-side random value)


AUTH_VARIABLES = [
    FixedVariable("GITHUB_CLIENT_ID", "GitHub client ID", False, "From your GitHub OAuth app's settings."),
    FixedVariable("GITHUB_CLIENT_SECRET", "GitHub client secret", True, "Generated in the same GitHub OAuth app."),
    FixedVariable("NEXTAUTH_URL", "NEXTAUTH_URL", False, "Your app's public address: the App URL at the top of this page."),
    FixedVariable("NEXTAUTH_SECRET", "NEXTAUTH_SECRET", True, "Signs session cookies; generate one here.", generated=True),
]

PAYMENT_VARIABLES = [
    FixedVariable("NEXT_PUBLIC_STRIPE_PUBLISHABLE_KEY", "Stripe publishable key", False, "Starts with pk_; safe in the browser."),
    FixedVariable("STRIPE_SECRET_KEY", "Stripe secret key", True, "Starts with sk_; server only."),
    FixedVariable("STRIPE_WEBHOOK_SECRET", "Stripe webhook secret", True, "Starts with whsec_; from the webhook endpoint."),
    FixedVariable("PAYPAL_CLIENT_ID", "PayPal client ID", False, "From your PayPal REST app."),
    FixedVariable("PAYPAL_CLIENT_SECRET", "PayPal client secret", True, "From the same PayPal REST app."),
]


def _validation_message(key: str, value: str) -> str | None:
    try:
        services.validate_variable(key, value)
    except ValidationError as error:
        return error.messages[0]
    return None


class FixedVariablesForm(forms.Form):
    """One field per fixed key. A non-secret field left empty removes the variable; a secret field
    left empty keeps the stored value (the page never shows it), and has its own Remove button."""

    def __init__(self, *args, variables: list[FixedVariable], stored: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.variables = variables
        self.stored = stored  # key → Environment row
        for variable in variables:
            row = stored.get(variable.key)
            attributes = {"autocomplete": "off", "spellcheck": "false"}
            if variable.secret:
                attributes["placeholder"] = "•••••••• saved — type to replace" if row else "Not set"
            self.fields[variable.key] = forms.CharField(
                label=variable.label,
                required=False,
                strip=True,
                help_text=variable.help,
                initial="" if variable.secret or row is None else row.value,
                widget=forms.TextInput(attrs=attributes),
            )

    def clean(self):
        data = super().clean()
        for variable in self.variables:
            message = _validation_message(variable.key, data.get(variable.key, ""))
            if message:
                self.add_error(variable.key, message)
        return data

    def changes(self, category: str) -> tuple[list[dict], list[str]]:
        """(variables to save, keys to remove) for what the user actually changed."""
        to_save, to_remove = [], []
        for variable in self.variables:
            value = self.cleaned_data.get(variable.key, "")
            row = self.stored.get(variable.key)
            if variable.secret and value == "":
                continue
            if not variable.secret and value == "":
                if row is not None:
                    to_remove.append(variable.key)
                continue
            if row is None or row.value != value or row.category != category:
                to_save.append({"key": variable.key, "value": value, "category": category, "is_secret": variable.secret})
        return to_save, to_remove


class VariableRowsForm:
    """The Environment and Secrets pages: the stored variables of one category (values editable,
    keys fixed) plus new rows. Not a Django Form: the number of rows varies with the page.

    Field names: ``value-<id>`` for a stored variable, ``new-key-<n>`` / ``new-value-<n>`` for a
    new one. A stored secret left empty keeps its value.
    """

    def __init__(self, data, *, category: str, stored: list, elsewhere: dict[str, str]):
        self.data = data
        # Keys of the project's other pages (key → page name): typing one here would move it.
        self.elsewhere = elsewhere
        self.category = category
        self.secret = category == EnvironmentCategory.SECRET
        self.stored = stored
        self.errors: dict[str, str] = {}
        self.new_rows: list[dict] = []
        self.to_save: list[dict] = []

    def is_valid(self) -> bool:
        stored_keys = {row.key for row in self.stored}
        for row in self.stored:
            value = self.data.get(f"value-{row.pk}")
            if value is None or (self.secret and value == ""):
                continue  # not on the form, or a secret left as it was
            message = _validation_message(row.key, value)
            if message:
                self.errors[f"value-{row.pk}"] = message
            elif value != row.value:
                self.to_save.append({"key": row.key, "value": value, "category": self.category, "is_secret": self.secret})
        index = 0
        seen = set()
        while f"new-key-{index}" in self.data:
            key = self.data.get(f"new-key-{index}", "").strip()
            value = self.data.get(f"new-value-{index}", "")
            self.new_rows.append({"index": index, "key": key, "value": "" if self.secret else value})
            if key:
                message = _validation_message(key, value)
                if not message and (key in stored_keys or key in seen):
                    message = f"{key} is already on this page; change its value above."
                if not message and key in self.elsewhere:
                    message = f"{key} is set on the {self.elsewhere[key]} page; change it there."
                if message:
                    self.errors[f"new-key-{index}"] = message
                else:
                    seen.add(key)
                    self.to_save.append({"key": key, "value": value, "category": self.category, "is_secret": self.secret})
            elif value:
                self.errors[f"new-key-{index}"] = "Give this value a name."
            index += 1
        return not self.errors
