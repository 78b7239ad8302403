// Bastion passkeys page: drives the WebAuthn ceremonies through Bastion's JSON API.
// Served with a CSP that allows this same-origin script only (no inline script, Trusted
// Types required): it writes the page with textContent, never HTML. The access token lives in
// this closure (memory), never in storage.
"use strict";

(() => {
  const TIMEOUT_MS = 10000; // create()/get() stay pending forever without an abort signal
  let accessToken = null;
  let lastFinish = null;

  function b64urlToBuf(text) {
    let s = text.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function bufToB64url(buf) {
    const bytes = new Uint8Array(buf);
    let bin = "";
    for (const b of bytes) bin += String.fromCharCode(b);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (accessToken) headers.Authorization = "Bearer " + accessToken;
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
    });
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (e) {
      data = text;
    }
    return { status: response.status, data };
  }

  function expect(result, ...statuses) {
    if (!statuses.includes(result.status)) {
      const code = result.data && result.data.code ? result.data.code : "http_" + result.status;
      const error = new Error(code);
      error.result = result;
      throw error;
    }
    return result.data;
  }

  function creationOptions(json) {
    return {
      ...json,
      challenge: b64urlToBuf(json.challenge),
      user: { ...json.user, id: b64urlToBuf(json.user.id) },
      excludeCredentials: (json.excludeCredentials || []).map((c) => ({ ...c, id: b64urlToBuf(c.id) })),
    };
  }

  function requestOptions(json) {
    return {
      ...json,
      challenge: b64urlToBuf(json.challenge),
      allowCredentials: (json.allowCredentials || []).map((c) => ({ ...c, id: b64urlToBuf(c.id) })),
    };
  }

  function registrationJSON(credential) {
    const r = credential.response;
    return {
      id: credential.id,
      rawId: bufToB64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: {
        clientDataJSON: bufToB64url(r.clientDataJSON),
        attestationObject: bufToB64url(r.attestationObject),
        transports: typeof r.getTransports === "function" ? r.getTransports() : [],
      },
    };
  }

  function assertionJSON(credential) {
    const r = credential.response;
    return {
      id: credential.id,
      rawId: bufToB64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: {
        clientDataJSON: bufToB64url(r.clientDataJSON),
        authenticatorData: bufToB64url(r.authenticatorData),
        signature: bufToB64url(r.signature),
        userHandle: r.userHandle ? bufToB64url(r.userHandle) : null,
      },
    };
  }

  async function create(publicKey) {
    const credential = await navigator.credentials.create({
      publicKey: creationOptions(publicKey),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    return registrationJSON(credential);
  }

  async function get(publicKey) {
    const credential = await navigator.credentials.get({
      publicKey: requestOptions(publicKey),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    return assertionJSON(credential);
  }

  async function secondFactor(challengeToken) {
    const begun = expect(
      await api("POST", "/v1/sessions/mfa/webauthn/begin", { challenge_token: challengeToken }), 200);
    const credential = await get(begun.publicKey);
    lastFinish = { path: "/v1/sessions/mfa/webauthn/finish",
      body: { challenge_token: challengeToken, ceremony: begun.ceremony, credential } };
    return expect(await api("POST", lastFinish.path, lastFinish.body), 200);
  }

  async function passwordLogin(email, password) {
    accessToken = null;
    const result = await api("POST", "/v1/sessions", { email, password, transport: "bearer" });
    let tokens = expect(result, 200, 202);
    if (result.status === 202) {
      const methods = tokens.methods || [];
      if (!methods.includes("hwk") && !methods.includes("swk")) {
        throw new Error("second factor needed: " + methods.join(", "));
      }
      tokens = await secondFactor(tokens.challenge_token);
    }
    accessToken = tokens.access_token;
    return tokens;
  }

  async function registerPasskey(name) {
    const begun = expect(await api("POST", "/v1/account/mfa/webauthn/registrations"), 200);
    const credential = await create(begun.publicKey);
    lastFinish = { path: "/v1/account/mfa/webauthn/registrations/finish",
      body: { ceremony: begun.ceremony, credential, name: name || null } };
    return expect(await api("POST", lastFinish.path, lastFinish.body), 201);
  }

  async function passkeyLogin() {
    accessToken = null;
    const begun = expect(await api("POST", "/v1/sessions/webauthn/begin"), 200);
    const credential = await get(begun.publicKey);
    lastFinish = { path: "/v1/sessions/webauthn/finish",
      body: { ceremony: begun.ceremony, credential, transport: "bearer" } };
    const tokens = expect(await api("POST", lastFinish.path, lastFinish.body), 200);
    accessToken = tokens.access_token;
    return tokens;
  }

  async function listPasskeys() {
    return expect(await api("GET", "/v1/account/mfa/webauthn/credentials"), 200);
  }

  async function currentSession() {
    const found = expect(await api("GET", "/v1/sessions"), 200);
    return found.sessions.find((s) => s.current) || null;
  }

  async function logout() {
    if (accessToken) await api("DELETE", "/v1/sessions/current");
    accessToken = null;
    return { signed_out: true };
  }

  // -- the page ---------------------------------------------------------------------------------
  function show(state, message, data) {
    const status = document.getElementById("status");
    status.dataset.state = state;
    status.textContent = message;
    document.getElementById("output").textContent =
      data === undefined ? "" : JSON.stringify(data, null, 2);
  }

  function wire(id, label, action) {
    document.getElementById(id).addEventListener("click", async () => {
      show("busy", label + "...");
      try {
        show("ok", label + ": done.", await action());
      } catch (error) {
        show("error", label + " failed: " + error.message, error.result ? error.result.data : undefined);
      }
    });
  }

  const value = (id) => document.getElementById(id).value;

  document.addEventListener("DOMContentLoaded", () => {
    wire("password-login", "Password sign-in", () => passwordLogin(value("email"), value("password")));
    wire("register", "Passkey registration", () => registerPasskey(value("passkey-name")));
    wire("list", "My passkeys", listPasskeys);
    wire("passkey-login", "Passkey sign-in", async () => {
      const tokens = await passkeyLogin();
      return { session_id: tokens.session_id, session: await currentSession() };
    });
    wire("logout", "Sign out", logout);
  });

  // For scripted use (and tests): the flows and the encoding helpers, no secrets stored here.
  window.bastionPasskeys = Object.freeze({
    api, create, get, b64urlToBuf, bufToB64url, passwordLogin, registerPasskey, passkeyLogin,
    listPasskeys, currentSession, logout,
    lastFinish: () => lastFinish,
  });
})();
