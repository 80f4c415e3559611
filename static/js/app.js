// Small behaviours of the pages: toasts, confirmations, the "New project" dialog, reveal and copy.
// Everything works without this script too (plain forms and links); it only makes it nicer.
(function () {
  "use strict";

  const csrfToken = () => document.body.dataset.csrfToken || "";

  // --- toasts: what an action without a page load did -----------------------------------------
  const TOAST_MS = 6000;
  const MAX_TOASTS = 3;
  function toast(message, level) {
    const region = document.getElementById("toasts");
    if (!region || !message) return;
    const item = document.createElement("div");
    item.className = "toast toast-" + (level || "success");
    item.setAttribute("role", level === "error" ? "alert" : "status");
    const text = document.createElement("span");
    text.textContent = message;
    const close = document.createElement("button");
    close.type = "button";
    close.className = "message-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "\u00d7";
    close.addEventListener("click", () => item.remove());
    item.append(text, close);
    region.append(item);
    // A few at a time: a burst of actions must not stack toasts over the page.
    while (region.children.length > MAX_TOASTS) region.firstElementChild.remove();
    // Errors stay until dismissed: they say what to do, and that takes reading.
    if (level !== "error") setTimeout(() => item.remove(), TOAST_MS);
  }
  window.fsa = { toast };
  // The page's own success and info messages (after a form post) go the same way.
  document.querySelectorAll(".messages .message-success, .messages .message-info").forEach((item) => {
    setTimeout(() => item.remove(), TOAST_MS);
  });

  // Views answer htmx requests with HX-Trigger: {"toast": {"message", "level"}}.
  document.body.addEventListener("toast", (event) => toast(event.detail.message, event.detail.level));
  document.body.addEventListener("htmx:responseError", (event) => {
    const status = event.detail.xhr.status;
    if (status === 403 || status === 401) toast("Your session has ended: sign in again.", "error");
    else if (status === 404) toast("That project no longer exists; the list is being refreshed.", "error");
    else toast("The server did not answer as expected (" + status + "). Try again in a moment.", "error");
  });
  document.body.addEventListener("htmx:sendError", () => {
    // Polling keeps trying; say it once per outage, not every 3 s.
    if (!document.body.dataset.offline) {
      document.body.dataset.offline = "1";
      toast("Cannot reach the server; statuses will update again when it is back.", "error");
    }
  });
  document.body.addEventListener("htmx:afterRequest", (event) => {
    if (event.detail.successful) delete document.body.dataset.offline;
  });

  // On a phone the project sidebar starts folded, so the page itself comes first.
  if (window.matchMedia("(max-width: 860px)").matches) {
    document.querySelectorAll("details.sidebar-projects[open]").forEach((details) => details.removeAttribute("open"));
  }

  document.addEventListener("click", (event) => {
    const dismiss = event.target.closest("[data-dismiss]");
    if (dismiss) dismiss.closest("li, .toast")?.remove();
  });

  // --- confirmations: one accessible dialog for htmx (hx-confirm) and forms (data-confirm) ----
  function confirmAction(text, label) {
    const dialog = document.getElementById("confirm-dialog");
    if (!dialog || typeof dialog.showModal !== "function") return Promise.resolve(window.confirm(text));
    document.getElementById("confirm-text").textContent = text;
    document.getElementById("confirm-button").textContent = label || "Confirm";
    dialog.returnValue = "";
    dialog.showModal();
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
    });
  }

  document.body.addEventListener("htmx:confirm", (event) => {
    if (!event.detail.question) return;
    event.preventDefault();
    const label = event.detail.elt.dataset.confirmLabel;
    confirmAction(event.detail.question, label).then((yes) => {
      if (yes) event.detail.issueRequest(true);
    });
  });

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-confirm]");
    if (!button || button.dataset.confirmed) return;
    event.preventDefault();
    confirmAction(button.dataset.confirm, button.textContent.trim()).then((yes) => {
      if (!yes) return;
      button.dataset.confirmed = "1";
      button.click();
      delete button.dataset.confirmed;
    });
  });

  // --- busy buttons: slow work shows progress, and a second click does not send it twice ------
  document.addEventListener("submit", (event) => {
    const form = event.target;
    const button = event.submitter;
    if (event.defaultPrevented || !button || !button.dataset.busyLabel) return;
    // Disabled after this tick, so the button's own name=value is still submitted.
    setTimeout(() => {
      button.dataset.label = button.textContent;
      button.textContent = button.dataset.busyLabel;
      button.disabled = true;
      form.setAttribute("aria-busy", "true");
    }, 0);
  });
  // Coming back with the browser's Back button must not leave a button stuck "Saving…".
  window.addEventListener("pageshow", () => {
    document.querySelectorAll("button[data-label]").forEach((button) => {
      button.textContent = button.dataset.label;
      button.disabled = false;
    });
  });

  // --- dialogs ----------------------------------------------------------------------------------
  document.addEventListener("click", (event) => {
    const opener = event.target.closest("[data-open-dialog]");
    if (opener) {
      const dialog = document.getElementById(opener.dataset.openDialog);
      if (dialog) {
        dialog.showModal();
        dialog.querySelector("input, textarea")?.focus();
      }
    }
    const closer = event.target.closest("[data-close-dialog]");
    if (closer) closer.closest("dialog")?.close();
  });

  // --- the "New project" dialog: the API's answer, field by field ------------------------------
  // Mirrors projects.naming.validate_project_name for instant feedback; the server decides.
  function nameProblem(name) {
    name = name.trim();
    if (!name) return "Enter a project name.";
    if (name.length > 64) return "A project name has at most 64 characters.";
    const bad = [...name].find((c) => !/[\p{L}\p{N} -]/u.test(c));
    if (bad) return "'" + bad + "' is not allowed: use letters, digits, spaces and hyphens.";
    if (!/^\p{L}/u.test(name) || !/\p{L}$/u.test(name)) return "A project name starts and ends with a letter.";
    return "";
  }

  function showFieldError(form, field, message) {
    const input = form.querySelector("[name=" + field + "]");
    const error = document.getElementById("new-project-" + field + "-error");
    if (input) input.setAttribute("aria-invalid", message ? "true" : "false");
    if (error) {
      error.textContent = message || "";
      error.hidden = !message;
    }
  }

  const newProjectForm = document.getElementById("new-project-form");
  if (newProjectForm) {
    const nameInput = newProjectForm.querySelector("[name=name]");
    nameInput.addEventListener("input", () => {
      // Quiet while the field is empty, so typing the first letter does not start with a scolding.
      showFieldError(newProjectForm, "name", nameInput.value ? nameProblem(nameInput.value) : "");
    });
    newProjectForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const formError = document.getElementById("new-project-error");
      formError.hidden = true;
      const problem = nameProblem(nameInput.value);
      showFieldError(newProjectForm, "name", problem);
      if (problem) {
        nameInput.focus();
        return;
      }
      const button = newProjectForm.querySelector("button[type=submit]");
      const label = button.textContent;
      button.disabled = true;
      button.textContent = button.dataset.busyLabel;
      try {
        const response = await fetch(newProjectForm.dataset.apiUrl, {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
          body: JSON.stringify({
            name: nameInput.value,
            description: newProjectForm.querySelector("[name=description]").value,
          }),
        });
        const body = await response.json().catch(() => ({}));
        if (response.status === 201) {
          newProjectForm.reset();
          newProjectForm.closest("dialog").close();
          toast("Project " + body.name + " is being created; its card turns green when it runs.", "success");
          htmx.trigger("#project-cards", "refresh");
        } else if (body.code === "KUBECONFIG_MISSING") {
          window.location.href = newProjectForm.dataset.settingsUrl;
        } else if (body.fields) {
          Object.entries(body.fields).forEach(([field, messages]) => showFieldError(newProjectForm, field, messages[0]));
          newProjectForm.querySelector("[aria-invalid=true]")?.focus();
        } else {
          formError.textContent = (body.message || "The project could not be created.") + (response.status >= 500 ? " Try again in a moment." : "");
          formError.hidden = false;
        }
      } catch (error) {
        formError.textContent = "Cannot reach the server. Check your connection and try again.";
        formError.hidden = false;
      } finally {
        button.disabled = false;
        button.textContent = label;
      }
    });
  }

  // --- reveal and copy secrets (database password, secret variables, settings) ----------------
  async function postJson(url, data) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: data ? JSON.stringify(data) : undefined,
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.message || "The server refused (" + response.status + ").");
    return body;
  }

  async function copyText(text, what) {
    try {
      await navigator.clipboard.writeText(text);
      toast(what + " copied to the clipboard.", "success");
    } catch (error) {
      toast("The browser did not allow copying; select the text and copy it by hand.", "error");
    }
  }

  // The database's clear values, fetched once per page on the first Reveal or Copy.
  let databaseSecrets = null;
  async function loadDatabaseSecrets() {
    if (!databaseSecrets) {
      const panel = document.getElementById("database-panel");
      databaseSecrets = await postJson(panel.dataset.revealUrl);
    }
    return databaseSecrets;
  }

  document.addEventListener("click", async (event) => {
    const copy = event.target.closest("[data-copy]");
    if (copy) {
      const source = document.querySelector(copy.dataset.copy);
      copyText(source.value ?? source.textContent.trim(), copy.getAttribute("aria-label")?.replace(/^Copy /, "") || "Text");
      return;
    }
    const copySecret = event.target.closest("[data-copy-secret]");
    if (copySecret) {
      try {
        const secrets = await loadDatabaseSecrets();
        const name = copySecret.dataset.copySecret;
        copyText(secrets[name], name === "password" ? "Password" : "Connection string");
      } catch (error) {
        toast(error.message, "error");
      }
      return;
    }
    const revealDatabase = event.target.closest("[data-reveal-database]");
    if (revealDatabase) {
      const shown = revealDatabase.getAttribute("aria-pressed") === "true";
      try {
        const secrets = await loadDatabaseSecrets();
        document.querySelectorAll("#database-panel [data-secret]").forEach((element) => {
          if (!element.dataset.masked) element.dataset.masked = element.textContent;
          element.textContent = shown ? element.dataset.masked : secrets[element.dataset.secret];
        });
        revealDatabase.setAttribute("aria-pressed", shown ? "false" : "true");
        revealDatabase.textContent = shown ? "Reveal" : "Hide";
      } catch (error) {
        toast(error.message, "error");
      }
      return;
    }
    const revealVariable = event.target.closest("[data-reveal-variable], [data-reveal-config]");
    if (revealVariable) {
      const input = document.querySelector(revealVariable.dataset.target);
      try {
        const body = revealVariable.dataset.revealConfig
          ? await postJson(revealVariable.dataset.url, { key: revealVariable.dataset.revealConfig })
          : await postJson(revealVariable.dataset.revealVariable);
        input.value = body.value;
        input.type = "text";
        input.focus();
        revealVariable.remove();
      } catch (error) {
        toast(error.message, "error");
      }
    }
  });

  // --- variables pages: another empty row ------------------------------------------------------
  document.addEventListener("click", (event) => {
    const add = event.target.closest("[data-add-row]");
    if (!add) return;
    const rows = add.closest("form").querySelectorAll("[data-new-row]");
    const last = rows[rows.length - 1];
    const copy = last.cloneNode(true);
    const index = Number(last.querySelector("input").name.replace(/\D+/g, "")) + 1;
    copy.querySelectorAll("input").forEach((input) => {
      input.name = input.name.replace(/\d+$/, String(index));
      input.value = "";
    });
    copy.querySelectorAll(".field-error").forEach((error) => error.remove());
    last.after(copy);
    copy.querySelector("input").focus();
  });
})();
