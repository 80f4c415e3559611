/*
 * The project terminal page: xterm.js tabs, each a websocket to the platform's terminal proxy
 * (/ws/projects/<id>/terminal/?session=<name>), which speaks ttyd's protocol on our behalf. The page
 * never holds a sandbox credential: the proxy adds it upstream.
 *
 * ttyd protocol (runtime/README.md): first frame JSON {columns, rows}; then client → server
 * "0"+input, "1"+JSON resize, "2" pause, "3" resume; server → client "0"+output, "1"+title,
 * "2"+preferences.
 */
(function () {
  "use strict";

  const app = document.getElementById("terminal-app");
  if (!app) return;

  const config = {
    socketPath: app.dataset.socketPath,
    statusUrl: app.dataset.statusUrl,
    uploadUrl: app.dataset.uploadUrl,
    projectId: app.dataset.projectId,
    chunkBytes: Number(app.dataset.chunkBytes) || 5 * 1024 * 1024,
    maxUploadBytes: Number(app.dataset.maxUploadBytes) || 0,
    csrfToken: (app.querySelector("input[name=csrfmiddlewaretoken]") || {}).value || "",
  };

  // Close codes of sandboxes.terminal; the ones listed in FINAL will not get better by retrying.
  const CLOSE_MESSAGES = {
    4400: "The terminal request was malformed.",
    4401: "Your session has ended. Sign in again to use the terminal.",
    4403: "This page's origin is not allowed to open the terminal.",
    4404: "This project does not exist or is not yours.",
    4409: "The sandbox is not running.",
    4502: "The sandbox's terminal went away. Reconnecting…",
  };
  const FINAL = new Set([4400, 4401, 4403, 4404]);
  const NOT_RUNNING = 4409;
  const STATUS_POLL_MS = 3000; // the original polled project status every 3 s
  const RETRY_FIRST_MS = 1000;
  const RETRY_MAX_MS = 30000;
  // ttyd's own client uses these flow-control numbers: pause the shell while xterm.js is behind.
  const FLOW_LIMIT = 100000;
  const FLOW_HIGH = 10;
  const FLOW_LOW = 4;
  const SESSION_NAME = /^[A-Za-z0-9_-]{1,32}$/;
  const TABS_KEY = "fullstackagent:terminal-tabs:" + config.projectId;

  const encoder = new TextEncoder();
  const tabsNav = document.getElementById("terminal-tabs");
  const addButton = document.getElementById("terminal-add");
  const panes = document.getElementById("terminal-panes");
  const overlay = document.getElementById("terminal-overlay");
  const overlayTitle = document.getElementById("terminal-overlay-title");
  const overlayDetail = document.getElementById("terminal-overlay-detail");
  const dropHint = document.getElementById("terminal-drop-hint");
  const uploadBox = document.getElementById("terminal-upload");
  const uploadLabel = document.getElementById("terminal-upload-label");
  const uploadProgress = document.getElementById("terminal-upload-progress");

  const tabs = new Map(); // session name → TerminalTab
  let activeTab = null;
  let sandboxRunning = app.dataset.sandboxStatus === "RUNNING";
  let statusTimer = null;

  function frame(kind, payload) {
    const body = typeof payload === "string" ? encoder.encode(payload) : payload || new Uint8Array(0);
    const bytes = new Uint8Array(body.length + 1);
    bytes[0] = kind.charCodeAt(0);
    bytes.set(body, 1);
    return bytes;
  }

  class TerminalTab {
    constructor(name) {
      this.name = name;
      this.socket = null;
      this.retryDelay = RETRY_FIRST_MS;
      this.retryTimer = null;
      this.closedByUser = false;
      this.written = 0;
      this.pending = 0;
      this.paused = false;

      this.pane = document.createElement("div");
      this.pane.className = "terminal-pane";
      this.pane.dataset.session = name;
      panes.appendChild(this.pane);

      this.button = document.createElement("button");
      this.button.type = "button";
      this.button.className = "terminal-tab";
      this.button.dataset.session = name;
      this.button.setAttribute("role", "tab");
      const label = document.createElement("span");
      label.textContent = name;
      this.button.appendChild(label);
      if (name !== "main") {
        const close = document.createElement("span");
        close.className = "terminal-tab-close";
        close.title = "Close this tab (the shell keeps running; a tab with the same name returns to it)";
        close.textContent = "×";
        close.addEventListener("click", (event) => {
          event.stopPropagation();
          closeTab(this);
        });
        this.button.appendChild(close);
      }
      this.button.addEventListener("click", () => activate(this));
      tabsNav.insertBefore(this.button, addButton);

      this.term = new Terminal({
        scrollback: 10000,
        // A steady cursor for whoever asked their system for less motion (as the app's spinner).
        cursorBlink: !window.matchMedia("(prefers-reduced-motion: reduce)").matches,
        // The web font from npm (@fontsource/jetbrains-mono): with the system fonts, underscores
        // fell below the cell and vanished. lineHeight leaves room under the baseline.
        fontFamily: '"JetBrains Mono", ui-monospace, Menlo, Consolas, monospace',
        fontSize: 14,
        lineHeight: 1.2,
        theme: { background: "#0f1419" },
      });
      this.fit = new FitAddon.FitAddon();
      this.term.loadAddon(this.fit);
      // URLs the shell or the agent prints open in a new tab (the app's address, docs).
      this.term.loadAddon(new WebLinksAddon.WebLinksAddon());
      this.term.open(this.pane);
      this.term.onData((data) => this.send(frame("0", data)));
      this.term.onBinary((data) => {
        const bytes = new Uint8Array(data.length);
        for (let i = 0; i < data.length; i += 1) bytes[i] = data.charCodeAt(i) & 0xff;
        this.send(frame("0", bytes));
      });
      this.term.onResize(({ cols, rows }) => this.send(frame("1", JSON.stringify({ columns: cols, rows: rows }))));
      this.term.onTitleChange((title) => (this.button.title = title));
      this.term.attachCustomKeyEventHandler((event) => clipboardKeys(this, event));
    }

    url() {
      const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
      return scheme + "//" + window.location.host + config.socketPath + "?session=" + encodeURIComponent(this.name);
    }

    connect() {
      clearTimeout(this.retryTimer);
      if (this.socket && this.socket.readyState <= WebSocket.OPEN) return;
      const socket = new WebSocket(this.url());
      socket.binaryType = "arraybuffer";
      this.socket = socket;
      this.written = 0;
      this.pending = 0;
      this.paused = false;
      socket.onopen = () => {
        this.fitToPane();
        // ttyd's first message: the size. The proxy adds the credential to it.
        socket.send(encoder.encode(JSON.stringify({ columns: this.term.cols, rows: this.term.rows })));
        if (this === activeTab) hideOverlay();
      };
      socket.onmessage = (event) => {
        const data = new Uint8Array(event.data);
        if (data.length === 0) return;
        if (data[0] === 48) {
          this.retryDelay = RETRY_FIRST_MS; // output flows: the connection is healthy again
          this.write(data.subarray(1));
        }
        // "1" (title) is handled through xterm's own title sequence; "2" (preferences) is not used.
      };
      socket.onclose = (event) => this.closed(socket, event.code);
    }

    // A line of the platform's own, written by the page (not the sandbox): yellow, on a line of its own.
    notice(text) {
      this.term.write("\r\n\x1b[33m[FullstackAgent] " + text + "\x1b[0m\r\n");
    }

    write(bytes) {
      this.written += bytes.length;
      if (this.written <= FLOW_LIMIT) {
        this.term.write(bytes);
        return;
      }
      this.written = 0;
      this.pending += 1;
      this.term.write(bytes, () => {
        this.pending = Math.max(this.pending - 1, 0);
        if (this.paused && this.pending < FLOW_LOW) {
          this.paused = false;
          this.send(frame("3"));
        }
      });
      if (!this.paused && this.pending > FLOW_HIGH) {
        this.paused = true;
        this.send(frame("2"));
      }
    }

    send(bytes) {
      if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(bytes);
    }

    closed(socket, code) {
      if (socket !== this.socket) return;
      this.socket = null;
      if (this.closedByUser) return;
      if (FINAL.has(code)) {
        if (this === activeTab) showOverlay(CLOSE_MESSAGES[code], code === 4401 ? "Reload the page after signing in." : "");
        return;
      }
      if (code === NOT_RUNNING) {
        sandboxRunning = false;
        if (this === activeTab) showOverlay(CLOSE_MESSAGES[code], "Waiting for it to start…");
        pollStatus();
        return;
      }
      // 4502, a dropped network, a platform restart: come back to the same tmux session, with backoff.
      const delay = this.retryDelay;
      this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX_MS);
      if (this === activeTab) {
        showOverlay("Disconnected from the terminal.", "Reconnecting in " + Math.round(delay / 1000) + " s…");
      }
      this.retryTimer = setTimeout(() => {
        if (sandboxRunning) this.connect();
        else pollStatus();
      }, delay);
    }

    fitToPane() {
      if (this.pane.offsetParent === null) return; // hidden tabs keep their size until shown
      try {
        this.fit.fit();
      } catch (error) {
        /* a pane without a size yet */
      }
    }

    dispose() {
      this.closedByUser = true;
      clearTimeout(this.retryTimer);
      if (this.socket) this.socket.close(1000);
      this.term.dispose();
      this.pane.remove();
      this.button.remove();
    }
  }

  // --- tabs ------------------------------------------------------------------------------------

  function savedTabNames() {
    try {
      const names = JSON.parse(window.localStorage.getItem(TABS_KEY) || "[]");
      return Array.isArray(names) ? names.filter((name) => SESSION_NAME.test(name)) : [];
    } catch (error) {
      return [];
    }
  }

  function saveTabNames() {
    try {
      window.localStorage.setItem(TABS_KEY, JSON.stringify(Array.from(tabs.keys())));
    } catch (error) {
      /* private mode: tabs are just not remembered */
    }
  }

  function openTab(name) {
    let tab = tabs.get(name);
    if (!tab) {
      tab = new TerminalTab(name);
      tabs.set(name, tab);
      saveTabNames();
      if (sandboxRunning) tab.connect();
    }
    activate(tab);
    return tab;
  }

  function activate(tab) {
    activeTab = tab;
    for (const other of tabs.values()) {
      const active = other === tab;
      other.pane.classList.toggle("active", active);
      other.button.classList.toggle("active", active);
      other.button.setAttribute("aria-selected", active ? "true" : "false");
    }
    tab.fitToPane();
    tab.term.focus();
    if (sandboxRunning && tab.socket && tab.socket.readyState === WebSocket.OPEN) hideOverlay();
  }

  function closeTab(tab) {
    tabs.delete(tab.name);
    saveTabNames();
    tab.dispose();
    if (activeTab === tab) activate(tabs.values().next().value);
  }

  function nextTabName() {
    for (let number = 2; ; number += 1) {
      const name = "term-" + number;
      if (!tabs.has(name)) return name;
    }
  }

  addButton.addEventListener("click", () => openTab(nextTabName()));

  // --- status overlay ----------------------------------------------------------------------------

  function showOverlay(title, detail) {
    overlayTitle.textContent = title;
    overlayDetail.textContent = detail || "";
    overlay.hidden = false;
  }

  function hideOverlay() {
    overlay.hidden = true;
  }

  let wasRunning = app.dataset.sandboxStatus === "RUNNING";

  function showState(state) {
    // The layout's status bar (projects/_status_bar.html) shows the statuses; the preview pane
    // (preview-pane.js) reloads when the sandbox comes up.
    if (state.running && !wasRunning) document.dispatchEvent(new CustomEvent("fsa:sandbox-running"));
    wasRunning = Boolean(state.running);
  }

  async function fetchStatus() {
    const response = await fetch(config.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status === 401) return { final: CLOSE_MESSAGES[4401] };
    if (response.status === 404) return { final: CLOSE_MESSAGES[4404] };
    if (!response.ok) throw new Error("status " + response.status);
    return response.json();
  }

  async function pollStatus() {
    if (statusTimer !== null) return;
    statusTimer = setTimeout(async () => {
      statusTimer = null;
      let state;
      try {
        state = await fetchStatus();
      } catch (error) {
        showOverlay("Cannot reach the platform.", "Trying again…");
        pollStatus();
        return;
      }
      if (state.final) {
        showOverlay(state.final, "");
        return;
      }
      showState(state);
      sandboxRunning = state.running;
      if (state.running) {
        hideOverlay();
        for (const tab of tabs.values()) tab.connect();
      } else {
        showOverlay("Sandbox: " + (state.sandbox || "none"), state.message || "Waiting for it to be RUNNING…");
        pollStatus();
      }
    }, STATUS_POLL_MS);
  }

  // --- copy and paste ----------------------------------------------------------------------------

  function copySelection(tab) {
    const text = tab.term.getSelection();
    if (text && navigator.clipboard) navigator.clipboard.writeText(text).catch(() => {});
  }

  async function pasteClipboard(tab) {
    if (!navigator.clipboard || !navigator.clipboard.readText) return;
    try {
      tab.term.paste(await navigator.clipboard.readText());
    } catch (error) {
      /* permission refused: Ctrl+V (the browser's own paste) still works */
    }
  }

  // Ctrl+Shift+C / Ctrl+Shift+V, as in desktop terminals; plain Ctrl+C stays the interrupt key.
  function clipboardKeys(tab, event) {
    if (event.type !== "keydown" || !event.ctrlKey || !event.shiftKey) return true;
    const key = event.key.toLowerCase();
    if (key === "c") {
      event.preventDefault(); // Chromium would open the element picker
      copySelection(tab);
      return false;
    }
    if (key === "v") {
      // Browsers paste on Ctrl+Shift+V themselves (as plain text) and xterm.js takes that paste
      // event; xterm.js must only not turn the key into a ^V of its own.
      return false;
    }
    return true;
  }

  document.getElementById("terminal-copy").addEventListener("click", () => activeTab && copySelection(activeTab));
  // The button gives the focus back to the terminal: the next Enter must reach the shell, not
  // press the button (and paste) again.
  document.getElementById("terminal-paste").addEventListener("click", async () => {
    if (!activeTab) return;
    await pasteClipboard(activeTab);
    activeTab.term.focus();
  });

  // --- uploads: drop or paste files onto the terminal ---------------------------------------------

  function randomUploadId() {
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  }

  function sendChunk(url, blob, onProgress) {
    return new Promise((resolve) => {
      const request = new XMLHttpRequest();
      request.open("POST", url);
      request.setRequestHeader("Content-Type", "application/octet-stream");
      request.setRequestHeader("X-CSRFToken", config.csrfToken);
      request.upload.onprogress = (event) => onProgress(event.loaded);
      request.onload = () => {
        let body = {};
        try {
          body = JSON.parse(request.responseText);
        } catch (error) {
          /* not JSON: an error page from a proxy */
        }
        resolve({ status: request.status, body: body });
      };
      request.onerror = () => resolve({ status: 0, body: {} });
      request.send(blob);
    });
  }

  async function uploadFile(tab, file) {
    if (config.maxUploadBytes && file.size > config.maxUploadBytes) {
      showUpload(file.name + " is larger than the upload limit.", 0);
      return null;
    }
    const id = randomUploadId();
    let offset = 0;
    let failures = 0;
    showUpload("Uploading " + file.name + "…", 0);
    for (;;) {
      const params = new URLSearchParams({
        session: tab.name,
        upload: id,
        name: file.name,
        size: String(file.size),
        offset: String(offset),
      });
      const chunk = file.slice(offset, offset + config.chunkBytes);
      const start = offset;
      const result = await sendChunk(config.uploadUrl + "?" + params, chunk, (loaded) =>
        setUploadProgress(file.size ? (start + loaded) / file.size : 1)
      );
      if (result.status === 200) {
        failures = 0;
        offset = result.body.received;
        setUploadProgress(file.size ? offset / file.size : 1);
        if (result.body.complete) return result.body.path;
        continue;
      }
      if (result.status === 409 && typeof result.body.offset === "number") {
        offset = result.body.offset; // resume where the platform's copy ends
        continue;
      }
      if (result.status === 0 && failures < 5) {
        failures += 1; // a dropped connection: the same chunk again, after a pause
        await new Promise((resolve) => setTimeout(resolve, 1000 * failures));
        continue;
      }
      showUpload("Upload of " + file.name + " failed: " + (result.body.message || "HTTP " + result.status), 0);
      return null;
    }
  }

  async function uploadFiles(files) {
    const tab = activeTab;
    if (!tab || files.length === 0) return;
    const paths = [];
    for (const file of files) {
      const path = await uploadFile(tab, file);
      if (path === null) return;
      paths.push(path);
    }
    const text = paths.join(" ");
    let copied = false;
    if (navigator.clipboard) {
      try {
        await navigator.clipboard.writeText(text);
        copied = true;
      } catch (error) {
        /* no clipboard permission: the path is shown instead */
      }
    }
    showUpload("Uploaded " + text + (copied ? " (path copied)" : ""), 1);
    uploadBox.dataset.path = text;
    setTimeout(() => (uploadBox.hidden = true), 8000);
  }

  function showUpload(text, fraction) {
    uploadLabel.textContent = text;
    uploadProgress.value = fraction;
    uploadBox.hidden = false;
  }

  function setUploadProgress(fraction) {
    uploadProgress.value = Math.min(Math.max(fraction, 0), 1);
  }

  panes.addEventListener("dragover", (event) => {
    if (!event.dataTransfer || !Array.from(event.dataTransfer.types).includes("Files")) return;
    event.preventDefault();
    dropHint.hidden = false;
  });
  panes.addEventListener("dragleave", () => (dropHint.hidden = true));
  panes.addEventListener("drop", (event) => {
    dropHint.hidden = true;
    if (!event.dataTransfer || event.dataTransfer.files.length === 0) return;
    event.preventDefault();
    uploadFiles(Array.from(event.dataTransfer.files));
  });
  // Capture phase: xterm.js would otherwise take the paste as text.
  panes.addEventListener(
    "paste",
    (event) => {
      const files = event.clipboardData ? Array.from(event.clipboardData.files) : [];
      if (files.length === 0) return;
      event.preventDefault();
      event.stopPropagation();
      uploadFiles(files);
    },
    true
  );

  // --- environment changes -------------------------------------------------------------------------
  // The status bar (projects/_status_bar.html, swapped in every 3 s) says which environment the
  // sandbox has. A change reaches new shells, not the open ones: tell the open terminals so.
  let knownEnvironment = null;
  function checkEnvironment() {
    const bar = document.getElementById("project-status-bar");
    const current = (bar && bar.dataset.environment) || "";
    if (!current) return;
    if (knownEnvironment !== null && current !== knownEnvironment) {
      for (const tab of tabs.values()) {
        tab.notice("The environment changed: new variables apply to new shells and new tabs. Restart the sandbox for running processes.");
      }
    }
    knownEnvironment = current;
  }
  document.body.addEventListener("htmx:afterSettle", checkEnvironment);

  // --- start ---------------------------------------------------------------------------------------

  window.addEventListener("resize", () => activeTab && activeTab.fitToPane());
  if (window.ResizeObserver) new ResizeObserver(() => activeTab && activeTab.fitToPane()).observe(panes);

  function start() {
    const names = savedTabNames();
    if (!names.includes("main")) names.unshift("main");
    for (const name of names) openTab(name);
    activate(tabs.get("main"));
    checkEnvironment();
    if (!sandboxRunning) {
      // Why it is not running (stopped while idle, an error), or that it is starting again.
      const detail = app.dataset.overlayDetail || "The terminal opens when the sandbox is RUNNING.";
      showOverlay("Sandbox: " + (app.dataset.sandboxStatus || "none"), detail);
      pollStatus();
    }
  }
  // xterm.js measures a cell once, when a terminal opens: wait for the font (a second at most, then
  // the fallback font) so the grid fits the font that draws it.
  const fontReady = document.fonts ? document.fonts.load('14px "JetBrains Mono"') : Promise.resolve();
  Promise.race([fontReady, new Promise((resolve) => setTimeout(resolve, 1000))]).then(start, start);
})();
