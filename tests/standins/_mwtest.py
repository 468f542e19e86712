"""Shared state of the test-router stand-ins: call log and a netifd emulation.

netifd keeps an *applied* view of each interface. Following pitfalls.md (last section), a reload
re-applies only interfaces that are new or whose interface section changed; a change to the
``wireguard_<if>`` peer sections alone is applied only by ifdown/ifup, renew or a restart.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

CALL_LOG = "/tmp/mwtest-calls.log"
STATE = "/tmp/mwtest/netifd.json"
NETWORK = "/etc/config/network"


def log_call(argv: list[str]) -> None:
    with open(CALL_LOG, "a") as f:
        f.write(" ".join(argv) + "\n")


def _tokens(text: str) -> list[list[str]]:
    """Split a UCI file into statements of tokens (quotes, backslashes, comments, ``;``)."""
    stmts: list[list[str]] = []
    cur: list[str] = []
    tok: list[str] | None = None
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            end = i + 1
            buf = []
            while end < n and text[end] != c:
                if c == '"' and text[end] == "\\" and end + 1 < n:
                    end += 1
                buf.append(text[end])
                end += 1
            tok = (tok or []) + buf
            i = end + 1
            continue
        if c == "\\" and i + 1 < n:
            if text[i + 1] != "\n":
                tok = (tok or []) + [text[i + 1]]
            i += 2
            continue
        if c in " \t\n;#":
            if tok is not None:
                cur.append("".join(tok))
                tok = None
            if c == "#" :
                while i < n and text[i] != "\n":
                    i += 1
                continue
            if c in "\n;" and cur:
                stmts.append(cur)
                cur = []
            i += 1
            continue
        tok = (tok or []) + [c]
        i += 1
    if tok is not None:
        cur.append("".join(tok))
    if cur:
        stmts.append(cur)
    return stmts


def read_network() -> list[dict]:
    """Sections of /etc/config/network as dicts: {'type', 'name', 'options'}."""
    try:
        with open(NETWORK) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    sections: list[dict] = []
    for st in _tokens(text):
        kw = st[0]
        if kw in ("config", "c"):
            sections.append({"type": st[1], "name": st[2] if len(st) > 2 else None, "options": {}})
        elif kw in ("option", "o") and sections:
            sections[-1]["options"][st[1]] = st[2] if len(st) > 2 else ""
        elif kw in ("list", "l") and sections:
            old = sections[-1]["options"].get(st[1])
            old = old if isinstance(old, list) else ([] if old is None else [old])
            sections[-1]["options"][st[1]] = old + [st[2] if len(st) > 2 else ""]
    return sections


def _interfaces(sections: list[dict]) -> dict[str, dict]:
    return {s["name"]: s for s in sections if s["type"] == "interface" and s["name"]}


def _peers(sections: list[dict], iface: str) -> list[dict]:
    out = []
    for s in sections:
        o = s["options"]
        if s["type"] == f"wireguard_{iface}" and o.get("public_key") and o.get("disabled", "0") != "1":
            out.append(o)
    return out


def load_state() -> dict:
    try:
        with open(STATE) as f:
            return json.load(f)
    except FileNotFoundError:
        return {"ifaces": {}}


def save_state(state: dict) -> None:
    os.makedirs(os.path.dirname(STATE), exist_ok=True)
    tmp = STATE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f, indent=1, sort_keys=True)
    os.replace(tmp, STATE)


def _applied(section: dict, sections: list[dict]) -> dict:
    opts = section["options"]
    return {
        "section": opts,
        "proto": opts.get("proto", "none"),
        "private_key": opts.get("private_key", ""),
        "peers": [p["public_key"] for p in _peers(sections, section["name"])],
        "allowed_ips": {p["public_key"]: p.get("allowed_ips", []) for p in _peers(sections, section["name"])},
        "up": opts.get("auto", "1") != "0" and opts.get("disabled", "0") != "1",
        "since": int(time.time()),
        "applies": 0,
    }


def apply(names: list[str] | None, only_changed: bool) -> dict:
    """Re-apply interfaces from the config (all of ``names``, or all; reload: only changed)."""
    sections = read_network()
    ifaces = _interfaces(sections)
    state = load_state()
    applied = state["ifaces"]
    for name in list(applied):
        if name not in ifaces:
            del applied[name]
    for name, sec in ifaces.items():
        if names is not None and name not in names:
            continue
        old = applied.get(name)
        if only_changed and old is not None and old["section"] == sec["options"]:
            continue
        new = _applied(sec, sections)
        new["applies"] = (old or {}).get("applies", 0) + 1
        applied[name] = new
    save_state(state)
    return state


def set_up(name: str, up: bool) -> bool:
    """ifdown/ifup: ifup re-reads the whole interface config (peers included)."""
    if up:
        state = apply([name], only_changed=False)
    else:
        state = load_state()
    iface = state["ifaces"].get(name)
    if iface is None:
        return False
    iface["up"] = up
    iface["since"] = int(time.time())
    save_state(state)
    return True


def wg_pubkey(private: str) -> str:
    if not private:
        return "(none)"
    try:
        r = subprocess.run(["/usr/bin/wg", "pubkey"], input=private + "\n", capture_output=True,
                           text=True, timeout=5, check=False)
    except OSError:
        return "(none)"
    return r.stdout.strip() or "(invalid)"
