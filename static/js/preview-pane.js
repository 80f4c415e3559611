// The preview pane beside the terminal: the project's app in a frame (on its own origin, reached
// through the platform's one-time hand-off), a Reload button and a splitter to resize it.
(() => {
  "use strict";
  const pane = document.getElementById("preview-pane");
  const frame = document.getElementById("preview-frame");
  const splitter = document.getElementById("preview-splitter");
  if (!pane || !frame) return;
  const STORAGE_KEY = "fsa.preview.width";
  const MIN_WIDTH = 200;

  const SHOWN_KEY = "fsa.preview.shown";
  const placeholder = document.getElementById("preview-placeholder");

  function reload() {
    // A new hand-off each time: the frame may have been sent away to a page of the app's own.
    placeholder.hidden = true;
    frame.hidden = false;
    if (!pane.classList.contains("preview-open")) {
      pane.classList.add("preview-open");
      const saved = Number(localStorage.getItem(STORAGE_KEY));
      if (saved) setWidth(saved);
      window.dispatchEvent(new Event("resize"));  // the terminal refits
    }
    frame.src = new URL(document.getElementById("preview-open").getAttribute("href"), location.href).href;
  }

  function show() {
    localStorage.setItem(SHOWN_KEY, "1");
    reload();
  }

  function setWidth(width) {
    const max = Math.max(MIN_WIDTH, pane.parentElement.clientWidth - 320);
    const clamped = Math.min(Math.max(width, MIN_WIDTH), max);
    pane.style.flexBasis = clamped + "px";
    return clamped;
  }

  document.getElementById("preview-show").addEventListener("click", show);
  document.getElementById("preview-reload").addEventListener("click", show);
  document.addEventListener("fsa:sandbox-running", () => { if (!frame.hidden) reload(); });
  if (localStorage.getItem(SHOWN_KEY) === "1") reload();


  if (splitter) {
    splitter.addEventListener("pointerdown", (event) => {
      event.preventDefault();
      splitter.setPointerCapture(event.pointerId);
      // The frame would swallow the pointer moves while dragging over it.
      frame.style.pointerEvents = "none";
      const right = pane.getBoundingClientRect().right;
      const move = (moveEvent) => setWidth(right - moveEvent.clientX);
      const up = () => {
        splitter.removeEventListener("pointermove", move);
        splitter.removeEventListener("pointerup", up);
        frame.style.pointerEvents = "";
        localStorage.setItem(STORAGE_KEY, String(Math.round(pane.getBoundingClientRect().width)));
        window.dispatchEvent(new Event("resize"));  // the terminal refits
      };
      splitter.addEventListener("pointermove", move);
      splitter.addEventListener("pointerup", up);
    });
    splitter.addEventListener("keydown", (event) => {
      const step = event.key === "ArrowLeft" ? 40 : event.key === "ArrowRight" ? -40 : 0;
      if (!step) return;
      event.preventDefault();
      const width = setWidth(pane.getBoundingClientRect().width + step);
      localStorage.setItem(STORAGE_KEY, String(Math.round(width)));
      window.dispatchEvent(new Event("resize"));
    });
  }
})();
