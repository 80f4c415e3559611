// Sealos sign-in: ask the Sealos desktop (the window framing this page) for the user's session,
// then post its token and kubeconfig to the platform, which verifies them and signs the user in.
//
// The desktop answers a window.postMessage request {messageId, apiName: "user.getInfo", ...} with
// {messageId, success, data: {token, kubeconfig, user}}; this is the protocol of Sealos'
// desktop SDK, spoken directly so the page needs no bundler.
(function () {
  "use strict";
  var script = document.currentScript;
  var endpoint = script.dataset.endpoint;
  var status = document.getElementById("sealos-status");
  var allowedOrigins = JSON.parse(document.getElementById("sealos-desktop-origins").textContent);

  function show(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  function newMessageId() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    return String(Date.now()) + "-" + String(Math.random()).slice(2);
  }

  function askDesktop(apiName) {
    return new Promise(function (resolve, reject) {
      if (window.top === window) {
        reject(new Error("This page is not open inside the Sealos desktop."));
        return;
      }
      var messageId = newMessageId();
      var timer = setTimeout(function () {
        window.removeEventListener("message", onMessage);
        reject(new Error("Sealos did not answer."));
      }, 10000);
      function onMessage(event) {
        // Only the framing desktop, from a configured origin, may hand us a session: another
        // framer could otherwise sign the visitor in as an account of its choosing.
        if (event.source !== window.top || allowedOrigins.indexOf(event.origin) === -1) return;
        if (!event.data || event.data.messageId !== messageId) return;
        clearTimeout(timer);
        window.removeEventListener("message", onMessage);
        if (event.data.success === true && event.data.data) resolve(event.data.data);
        else reject(new Error("Sealos refused to share the session."));
      }
      window.addEventListener("message", onMessage);
      // The request carries nothing secret, and the desktop's origin is only known from its answer.
      window.top.postMessage(
        {messageId: messageId, apiName: apiName, appKey: "", clientLocation: window.location.origin, data: {}},
        "*"
      );
    });
  }

  askDesktop("user.getInfo")
    .then(function (session) {
      show("signing-in", "Signing you in…");
      return fetch(endpoint, {
        method: "POST",
        credentials: "same-origin",
        headers: {"Content-Type": "application/json", "Accept": "application/json"},
        body: JSON.stringify({token: session.token, kubeconfig: session.kubeconfig}),
      });
    })
    .then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw new Error(body.error || "Sign-in failed.");
        show("signed-in", "Signed in as " + body.username + ".");
        window.location.assign(body.redirect || "/");
      });
    })
    .catch(function (error) {
      show("failed", error.message);
    });
})();
