// mwanctl web: live updates (Server-Sent Events) and the action forms. No library, no build step.
"use strict";
(function () {
  const csrf = document.querySelector("meta[name=csrf-token]").content;
  const stream = document.querySelector("meta[name=stream]").content;
  const live = document.getElementById("live");
  window.mwUpdates = [];

  function stamp(text, cls) {
    if (!live) return;
    live.textContent = text;
    live.className = "live " + (cls || "");
  }

  function place(job) {
    const jobs = document.getElementById("jobs");
    if (!jobs) return;
    const old = document.getElementById("job-" + job.job);
    // a job never runs again once finished: a "running" view that arrives late (the POST's
    // answer after the stream's "finished" event, when the job ends at once) is stale
    if (old && old.dataset.status !== "running" && job.status === "running") return;
    if (old) { old.outerHTML = job.html; } else { jobs.insertAdjacentHTML("afterbegin", job.html); }
  }

  if (stream) {
    const es = new EventSource(stream);
    es.addEventListener("open", () => stamp("live", "ok"));
    es.addEventListener("error", () => stamp("reconnecting…", "warn"));
    es.addEventListener("status", (ev) => {
      const msg = JSON.parse(ev.data);
      for (const [id, html] of Object.entries(msg.parts)) {
        const el = document.getElementById(id);
        if (el) el.innerHTML = html;
      }
      const now = Date.now() / 1000;
      if (msg.seen) window.mwUpdates.push({ site: msg.site, seen: msg.seen, sent: msg.sent, shown: now });
      if (window.mwUpdates.length > 200) window.mwUpdates.shift();
      stamp("live · updated " + new Date().toLocaleTimeString(), "ok");
    });
    es.addEventListener("job", (ev) => place(JSON.parse(ev.data)));
  }

  function show(html, isError) {
    const out = document.getElementById("result");
    if (!out) return;
    out.innerHTML = html;
    out.setAttribute("role", isError ? "alert" : "status");
  }

  function esc(s) {
    const d = document.createElement("div");
    d.textContent = s;
    return d.innerHTML;
  }

  for (const form of document.querySelectorAll("form[data-action]")) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const button = form.querySelector("button");
      const body = {};
      for (const input of form.querySelectorAll("input[name]")) body[input.name] = input.value;
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      show("<p class=small>working…</p>", false);
      try {
        const r = await fetch(form.dataset.action, {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
          body: JSON.stringify(body),
        });
        const data = await r.json();
        if (!r.ok) {
          show("<p class='summary bad'>" + esc(data.error || ("HTTP " + r.status)) + "</p>", true);
        } else if (data.job) {
          show("<p class=small>started job " + data.job + ": progress below</p>", false);
          place(data);
          for (const input of form.querySelectorAll("input[name=confirm_site]")) input.value = "";
        } else {
          show(data.html, false);
          if (data.digest) {
            const d = document.querySelector("input[name=plan_digest]");
            if (d) d.value = data.digest;
          }
        }
      } catch (e) {
        show("<p class='summary bad'>request failed: " + esc(String(e)) + "</p>", true);
      } finally {
        button.disabled = false;
        button.removeAttribute("aria-busy");
      }
    });
  }
})();
