"""Server-rendered HTML and SVG: the same functions draw the first paint and every live update.

Charts are SVG drawn here, not by a JS chart library: nothing to vendor or update, they render
without JavaScript, print, and scale on a phone. State is never shown by colour alone: every
coloured mark also carries the state's word.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import json
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from mwanctl.errors import Diagnostic
from mwanctl.status import UplinkRow, format_duration, handshake_text
from mwanctl.web.actions import Job
from mwanctl.web.history import Event, History
from mwanctl.web.poller import SiteRef, Snapshot, key

e = html.escape
STATE_CLASS = {"online": "ok", "offline": "bad", "missing": "bad", "unknown": "bad", "connecting": "warn",
               "disconnecting": "warn", "disabled": "off", "not tracking": "info"}
PALETTE = ("#0969da", "#bc4c00", "#8250df", "#1a7f37", "#bf3989", "#0598bc", "#6e7781", "#9a6700")
HOURS = (0.25, 1, 6, 24)
STATIC = Path(__file__).parent / "static"
# Inlined into every page (one response paints the page: no extra round trip before the first
# paint) and allowed by their hashes in the Content-Security-Policy, so no other inline code runs.
CSS = (STATIC / "style.css").read_text()
JS = (STATIC / "app.js").read_text()


def _sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CSP = (f"default-src 'self'; script-src {_sha(JS)}; style-src {_sha(CSS)}; img-src 'self' data:; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _t(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="seconds")


def rate(v: Optional[float]) -> str:
    if v is None:
        return "–"
    bits = v * 8
    for unit in ("bit/s", "kbit/s", "Mbit/s", "Gbit/s"):
        if bits < 1000 or unit == "Gbit/s":
            return f"{bits:.0f} {unit}" if unit == "bit/s" else f"{bits:.1f} {unit}"
        bits /= 1000
    return ""


# --------------------------------------------------------------------------- page frame


def page(title: str, body: str, csrf: str, sites: Sequence[str], current: Optional[str] = None,
         stream: str = "") -> str:
    nav = "".join(f'<a href="/site/{e(s)}"{" aria-current=page" if s == current else ""}>{e(s)}</a>'
                  for s in sites)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{e(title)}</title><meta name=csrf-token content=\"{e(csrf)}\">"
        f'<meta name=stream content="{e(stream)}">'
        f"<style>{CSS}</style></head><body><a class=skip href=\"#main\">Skip to content</a>"
        f'<header><a class=brand href="/">mwanctl</a><nav aria-label=Sites>{nav}</nav>'
        '<span id=live class=live role=status aria-live=polite>connecting…</span></header>'
        f"<main id=main tabindex=-1>{body}</main><script>{JS}</script></body></html>")


# --------------------------------------------------------------------------- overview


def _badge(state: str) -> str:
    return f'<span class="badge {STATE_CLASS.get(state, "bad")}">{e(state)}</span>'


def topology_svg(ref: SiteRef, snap: Optional[Snapshot]) -> str:
    """Mother in the middle, its LAN left, one line per uplink to the internet on the right,
    each line and box in its uplink's state colour with the state written next to it."""
    rows: list[tuple[str, str, str]] = []       # name, state, detail
    if snap is not None and snap.status.reachable:
        for u in snap.status.uplinks:
            share = max(u.shares.values()) if u.shares else 0.0
            rows.append((key(u), u.state, f"tier {u.tier} · w{u.weight} · {share:.0%}"))
    else:
        why = "waiting for the first poll" if snap is None else "unreachable"
        rows = [(u.name, "unknown", why) for u in ref.topology.uplinks]
        rows += [(w.name, "unknown", why) for w in ref.topology.mother.wans]
    n = max(1, len(rows))
    h = max(140, 64 * n + 20)
    mid = h / 2
    mother_state = "ok" if snap is not None and snap.status.reachable else "bad"
    mother = ref.topology.mother.name
    out = [f'<svg class=topo viewBox="0 0 640 {h}" role=img aria-labelledby="topo-{e(ref.name)}">',
           f'<title id="topo-{e(ref.name)}">{e(ref.name)}: mother {e(mother)} with '
           + e(", ".join(f"{r[0]} {r[1]}" for r in rows)) + "</title>",
           f'<rect x=4 y="{mid - 22}" width=92 height=44 rx=8 class="node lan"/>'
           f'<text x=50 y="{mid + 5}" text-anchor=middle>LAN</text>',
           f'<line x1=96 y1="{mid}" x2=150 y2="{mid}" class="link ok"/>',
           f'<rect x=150 y="{mid - 30}" width=130 height=60 rx=10 class="node mother {mother_state}"/>'
           f'<text x=215 y="{mid - 4}" text-anchor=middle class=strong>{e(mother)}</text>'
           f'<text x=215 y="{mid + 16}" text-anchor=middle class=small>mother</text>',
           f'<ellipse cx=590 cy="{mid}" rx=44 ry=30 class="node net"/>'
           f'<text x=590 y="{mid + 5}" text-anchor=middle>Internet</text>']
    for i, (name, state, detail) in enumerate(rows):
        y = 10 + 64 * i + 27 if n > 1 else mid
        cls = STATE_CLASS.get(state, "bad")
        out.append(f'<g class="uplink {cls}" data-uplink="{e(name)}" data-state="{e(state)}">'
                   f'<path d="M280 {mid} C320 {mid} 300 {y} 340 {y}" class="link {cls}"/>'
                   f'<rect x=340 y="{y - 25}" width=170 height=50 rx=8 class="node {cls}"/>'
                   f'<text x=350 y="{y - 6}" class=strong>{e(name)}</text>'
                   f'<text x=500 y="{y - 6}" text-anchor=end class="state">{e(state)}</text>'
                   f'<text x=350 y="{y + 14}" class=small>{e(detail)}</text>'
                   f'<path d="M510 {y} C540 {y} 530 {mid} 546 {mid}" class="link {cls}"/></g>')
    out.append("</svg>")
    return "".join(out)


def _targets(u: UplinkRow) -> str:
    if not u.targets:
        return e(u.tracking)
    items = []
    for t in u.targets:
        q = "" if t.latency_ms is None else f" {t.latency_ms} ms, {t.loss_pct}% loss"
        dot = {"up": "ok", "skipped": "off"}.get(t.status, "bad")
        items.append(f'<li><span class="dot {dot}" aria-hidden=true></span>'
                     f"{e(t.ip)} {e(t.status)}{e(q)}</li>")
    return f"<ul class=targets>{''.join(items)}</ul>"


def _shares(u: UplinkRow) -> str:
    if not u.shares:
        return "–"
    return "<br>".join(f"{e(p.removeprefix('mw_'))} {s:.0%}" for p, s in u.shares.items())


def uplink_table(snap: Snapshot) -> str:
    head = ("Uplink", "State", "Since", "Tier", "Weight", "Share of new flows", "Tracking targets",
            "Handshake", "RX / TX")
    rows = []
    for u in snap.status.uplinks:
        rx, tx = snap.rates.get(key(u), (None, None))
        since = format_duration(u.since) if u.since is not None else "–"
        wan = ""
        if u.wan is not None:
            wan = f'<div class=small>own WAN: {"up" if u.wan.up else "down" if u.wan.up is False else "?"}</div>'
        cells = [f"<th scope=row>{e(key(u))}<div class=small>{e(u.kind)} {e(u.iface)}</div>{wan}</th>",
                 f"<td data-label=State>{_badge(u.state)}</td>", f"<td data-label=Since>{since}</td>",
                 f"<td data-label=Tier>{u.tier}</td>", f"<td data-label=Weight>{u.weight}</td>",
                 f"<td data-label=Share>{_shares(u)}</td>", f"<td data-label=Targets>{_targets(u)}</td>",
                 f"<td data-label=Handshake>{handshake_text(u, none='–', ago=' ago')}</td>",
                 f"<td data-label=\"RX / TX\">{rate(rx)} / {rate(tx)}</td>"]
        rows.append(f'<tr data-uplink="{e(key(u))}" data-state="{e(u.state)}">{"".join(cells)}</tr>')
    ths = "".join(f"<th scope=col>{h}</th>" for h in head)
    return (f"<div class=scroll><table class=uplinks><caption class=sr>Uplinks of {e(snap.site)}</caption>"
            f"<thead><tr>{ths}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def pending_notice(snap: Snapshot, link: bool) -> str:
    """Routers holding a deploy applied but not confirmed, each with the moment its own timer
    restores the old config (the deadline the router gave, counted from when it was read)."""
    if not snap.pending:
        return ""
    items = []
    for router, (p, read_at) in sorted(snap.pending.items()):
        when = read_at + p.deadline
        if p.deadline > 0:
            left = (f'rolls back by itself at <time class=deadline datetime="{_iso(when)}" data-ts="{when:.0f}">'
                    f"{_t(when)} UTC</time> (in {format_duration(p.deadline)}) unless confirmed")
        else:
            left = "its rollback time has passed and it still holds the change (timer gone?): confirm or roll back"
        items.append(f'<li data-router="{e(router)}"><strong>{e(router)}</strong>: applied by {e(p.owner)}; {left}</li>')
    where = f'<a href="/site/{e(snap.site)}">Confirm or roll it back</a>' if link else "Confirm or roll it back below"
    return (f'<div class=pending role=status><p><span class="badge warn">deploy pending</span> applied but not '
            f"confirmed on {len(items)} router(s). {where}.</p><ul>{''.join(items)}</ul></div>")


def card(ref: SiteRef, snap: Optional[Snapshot], link: bool = False) -> str:
    """One site's live overview (replaced as a whole on every update). ``link``: the card on the
    page of every site, linking to the site's page; it leaves out the per-uplink table (the
    picture already gives each uplink's state, tier, weight and share), which keeps a page of
    many sites light for the browser to lay out."""
    title = f'<a href="/site/{e(ref.name)}">{e(ref.name)}</a>' if link else e(ref.name)
    if snap is None:
        body, summary, cls = "", "waiting for the first poll…", "info"
    else:
        st = snap.status
        summary = e(snap.doc["summary"]["text"])
        cls = ("ok", "warn", "bad")[min(2, snap.doc["exit_code"])]
        problems = "".join(f'<li class="{e(p.severity)}">{e(p.severity)}: {e(p.message)}</li>'
                           for p in st.problems)
        reach = " · ".join(f'{e(r)} {"✓ reachable" if w is None else "✗ unreachable"}'
                           for r, w in snap.reach.items())
        more = f' <a href="/site/{e(ref.name)}">Details, history and actions</a>' if link else ""
        body = (pending_notice(snap, link) + (uplink_table(snap) if st.reachable and not link else "")
                + (f"<ul class=problems>{problems}</ul>" if problems else "")
                + f'<p class=small>Routers: {reach}. Polled <time datetime="{_iso(snap.seen)}" '
                  f'data-ts="{snap.seen:.3f}">{_t(snap.seen)} UTC</time> in {snap.duration * 1000:.0f} ms.{more}</p>')
    return (f'<section class=card id="card-{e(ref.name)}" data-seen="{snap.seen if snap else 0:.3f}" '
            f'aria-labelledby="h-{e(ref.name)}"><h2 id="h-{e(ref.name)}">{title}</h2>'
            f'<p class="summary {cls}">{summary}</p>{topology_svg(ref, snap)}{body}</section>')


# --------------------------------------------------------------------------- history


def timeline(events: list[Event]) -> str:
    if not events:
        return "<p class=small>No events yet.</p>"
    items = []
    for ev in events:
        cls = STATE_CLASS.get(ev.result, "ok" if ev.result in ("applied", "ok", "rotated", "reachable",
                                                                 "unchanged") else "bad")
        items.append(f'<li class="ev {e(ev.kind)}" data-kind="{e(ev.kind)}" data-result="{e(ev.result)}">'
                     f'<time datetime="{_iso(ev.ts)}">{_t(ev.ts)}</time> '
                     f'<span class="badge {cls}">{e(ev.kind)}: {e(ev.result)}</span> {e(ev.message)}</li>')
    return f"<ol class=timeline>{''.join(items)}</ol>"


Series = tuple[str, str, list[tuple[float, Optional[float]]], bool]     # name, colour, points, dashed


def _kbit(v: Optional[float]) -> Optional[float]:
    return v * 8 / 1000 if v is not None else None


def _chart(title: str, unit: str, series: list[Series],
           start: float, end: float, fmt: Any = None) -> str:
    """A line chart; ``series`` is (name, colour, points, dashed). Gaps (None) break the line."""
    w, h, left, right, top, bottom = 1000, 200, 64, 8, 10, 28
    values = [v for _, _, pts, _ in series for _, v in pts if v is not None]
    vmax = max(values) if values else 1.0
    vmax = vmax * 1.1 if vmax > 0 else 1.0
    fmt = fmt or (lambda v: f"{v:.0f}" if vmax >= 20 else f"{v:.1f}")
    span = max(1.0, end - start)

    def x(ts: float) -> float:
        return left + (ts - start) / span * (w - left - right)

    def y(v: float) -> float:
        return top + (1 - v / vmax) * (h - top - bottom)

    label = f"{title}: " + "; ".join(
        f"{name} latest {fmt(next((v for _, v in reversed(pts) if v is not None), 0))} {unit}"
        for name, _, pts, _ in series if any(v is not None for _, v in pts)) if values else f"{title}: no data yet"
    out = [f'<figure class=chart><figcaption>{e(title)} ({e(unit)})</figcaption>'
           f'<svg viewBox="0 0 {w} {h}" role=img aria-label="{e(label)}">']
    for frac in (0, 0.5, 1):
        yy = y(vmax / 1.1 * frac) if values else y(frac)
        out.append(f'<line x1={left} x2={w - right} y1="{yy:.1f}" y2="{yy:.1f}" class=grid />'
                   f'<text x={left - 4} y="{yy + 4:.1f}" text-anchor=end class=axis>'
                   f'{e(fmt(vmax / 1.1 * frac if values else frac))}</text>')
    for frac in (0, 0.5, 1):
        ts = start + frac * span
        anchor = ("start", "middle", "end")[int(frac * 2)]
        out.append(f'<text x="{x(ts):.1f}" y={h - 8} text-anchor={anchor} class=axis>'
                   f'{dt.datetime.fromtimestamp(ts, dt.timezone.utc):{"%H:%M:%S" if span < 900 else "%H:%M"}}</text>')
    for _name, colour, pts, dashed in series:
        seg: list[str] = []
        segs: list[list[str]] = [seg]
        for ts, v in pts:
            if v is None:
                seg = []
                segs.append(seg)
                continue
            seg.append(f"{x(ts):.1f},{y(v):.1f}")
        for s in segs:
            if len(s) == 1:
                cx, cy = s[0].split(",")
                out.append(f'<circle cx={cx} cy={cy} r=2 fill="{colour}"/>')
            elif s:
                out.append(f'<polyline points="{" ".join(s)}" fill=none stroke="{colour}" stroke-width="2"'
                           + (' stroke-dasharray="5 3"' if dashed else "") + "/>")
    out.append("</svg><ul class=legend>" + "".join(
        f'<li><svg viewBox="0 0 12 12" aria-hidden=true><rect width=12 height=12 rx=2 fill="{c}"/></svg>'
        f'{e(n)}{" (dashed)" if d else ""}</li>'
        for n, c, _, d in series) + "</ul></figure>")
    return "".join(out)


def _span(hours: float) -> str:
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:g} h"


def charts(history: History, ref: SiteRef, uplinks: Sequence[str], hours: float) -> str:
    end = time.time()
    start = end - hours * 3600
    data = {u: history.series(ref.name, u, start) for u in uplinks}
    first = min((rows[0][0] for rows in data.values() if rows), default=start)
    since = ""
    if first > start + 60:          # less history than the window: draw what there is, say so
        start = first
        since = f" (history since {dt.datetime.fromtimestamp(first, dt.timezone.utc):%H:%M:%S} UTC)"
    colours = {u: PALETTE[i % len(PALETTE)] for i, u in enumerate(uplinks)}
    rtt: list[Series] = [(u, colours[u], [(r[0], r[1]) for r in data[u]], False) for u in uplinks]
    loss: list[Series] = [(u, colours[u], [(r[0], r[2]) for r in data[u]], False) for u in uplinks]
    thr: list[Series] = [(f"{u} rx", colours[u], [(r[0], _kbit(r[3])) for r in data[u]], False) for u in uplinks]
    thr += [(f"{u} tx", colours[u], [(r[0], _kbit(r[4])) for r in data[u]], True) for u in uplinks]
    choose = " ".join(f'<a href="?hours={x:g}"{" aria-current=true" if x == hours else ""}>{_span(x)}</a>'
                      for x in HOURS)
    return (f'<div class=charts-head><span>Last {_span(hours)}{since}</span><span class=choose>{choose}</span></div>'
            + _chart("Round-trip time", "ms", rtt, start, end)
            + _chart("Packet loss", "%", loss, start, end)
            + _chart("Throughput", "kbit/s", thr, start, end,
                     lambda v: f"{v:.0f}" if v >= 10 or v == 0 else f"{v:.1f}"))


# --------------------------------------------------------------------------- actions


def actions_panel(site: str, busy: Optional[Job]) -> str:
    s = e(site)
    note = f'<p class="busy">Busy: {e(busy.kind)} (job {busy.id}) is running.</p>' if busy else ""
    return f"""{note}
<div class=actions>
 <form data-action="/api/site/{s}/validate" data-kind=validate><button type=submit>Validate</button></form>
 <form data-action="/api/site/{s}/plan" data-kind=plan><button type=submit>Plan</button></form>
 <form data-action="/api/site/{s}/keys" data-kind=keys><button type=submit>Show keys</button></form>
 <form data-action="/api/site/{s}/confirm" data-kind=job><button type=submit>Confirm pending deploy</button></form>
 <form data-action="/api/site/{s}/rollback" data-kind=job><button type=submit>Roll back pending deploy</button></form>
</div>
<form class=danger data-action="/api/site/{s}/deploy" data-kind=job>
 <label for="deploy-confirm">Deploy: type the site name <kbd>{s}</kbd> to confirm</label>
 <input id="deploy-confirm" name=confirm_site autocomplete=off required spellcheck=false>
 <input type=hidden name=plan_digest value="">
 <button type=submit>Deploy</button>
</form>
<form class=danger data-action="/api/site/{s}/rotate" data-kind=job>
 <label for="rotate-confirm">Rotate keys: type the site name <kbd>{s}</kbd> to confirm</label>
 <input id="rotate-confirm" name=confirm_site autocomplete=off required spellcheck=false>
 <label for="rotate-uplink">Only uplink (empty: all)</label>
 <input id="rotate-uplink" name=uplink autocomplete=off>
 <button type=submit>Rotate keys</button>
</form>
<div id=result class=result aria-live=polite></div>"""


def validate_result(path: str, diags: list[Diagnostic], lines: list[str]) -> str:
    errors = [d for d in diags if d.severity == "error"]
    head = (f'<p class="summary bad">{len(errors)} error(s) in {e(path)}</p>' if errors
            else f'<p class="summary ok">{e(path)}: ok</p>')
    listing = "".join(f'<li class="{e(d.severity)}">{e(str(d))}</li>' for d in diags)
    by_line: dict[int, list[Diagnostic]] = {}
    for d in diags:
        if d.location is not None:
            by_line.setdefault(d.location.line, []).append(d)
    src = []
    for i, text in enumerate(lines, 1):
        marks = by_line.get(i, [])
        cls = " class=err" if any(d.severity == "error" for d in marks) else " class=warn" if marks else ""
        src.append(f'<tr id="L{i}"{cls}><td class=ln>{i}</td><td><code>{e(text)}</code>'
                   + "".join(f'<div class=msg>↑ col {d.location.col if d.location else 0}: '
                             f'{e(d.field)}: {e(d.message)}</div>' for d in marks) + "</td></tr>")
    shown = "".join(src) if diags else ""
    return (head + (f"<ul class=diags>{listing}</ul>" if listing else "")
            + (f"<div class=scroll><table class=yaml><caption class=sr>{e(path)} with the errors at "
               f"their lines</caption>{shown}</table></div>" if shown else ""))


def plan_result(lines: list[str], blocked: list[str], digest: str) -> str:
    def cls(line: str) -> str:
        s = line.lstrip()
        return "add" if s.startswith("+") else "del" if s.startswith("-") else "chg" if s.startswith("~") else ""
    body = "\n".join(f'<span class="{cls(ln)}">{e(ln)}</span>' for ln in lines)
    block = "".join(f"<li>{e(b)}</li>" for b in blocked)
    return ((f'<ul class="problems">{block}</ul>' if block else "")
            + f'<pre class=plan data-digest="{e(digest)}">{body}</pre>')


def keys_result(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>No keys yet: they are generated by the first deploy.</p>"
    head = "".join(f"<th scope=col>{h}</th>" for h in ("Uplink", "End", "State", "Public key", "Created"))
    body = "".join(f"<tr><td>{e(r['uplink'])}</td><td>{e(r['end'])}</td><td>{e(r['state'])}</td>"
                   f"<td><code>{e(r['public_key'])}</code></td><td>{e(r['created'])}</td></tr>" for r in rows)
    return (f"<div class=scroll><table class=keys><caption>Public keys (private keys never leave the "
            f"server)</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def job_view(job: Job) -> str:
    cls = {"running": "info", "ok": "ok", "failed": "bad"}[job.status]
    routers = "".join(f"<li><strong>{e(r)}</strong>: {e(m)}</li>" for r, m in job.routers.items())
    return (f'<section class=job id="job-{job.id}" data-status="{e(job.status)}" aria-live=polite>'
            f'<h3>{e(job.kind)} (job {job.id}) <span class="badge {cls}">{e(job.status)}</span></h3>'
            + (f"<p class=summary>{e(job.summary)}</p>" if job.summary else "")
            + (f"<ul class=routers>{routers}</ul>" if routers else "")
            + f"<details><summary>Log</summary><pre>{e(chr(10).join(job.log))}</pre></details></section>")


def json_script(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))
