"""The OpenWrt feed must agree with pyproject.toml: same version, same runtime dependencies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).parent.parent
FEED = ROOT / "openwrt_feed"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# PyPI distribution -> OpenWrt package. None: not installed on the router (workstation-only).
PYPI_TO_OPENWRT: dict[str, str | None] = {
    "ruamel.yaml": "python3-ruamel-yaml",
    "ruamel.yaml.clib": None,  # only speeds up reading YAML; the router uses the pure-Python parser
    "click": "python3-click",
    "rich": "python3-rich",
    "cryptography": "python3-cryptography",
    "pyuci": "python3-uci",
    "ubus": "python3-ubus",
    "paramiko": None,  # ssh transport: deploying *to* routers from a workstation
    "httpx": None,     # ubus transport over HTTP: likewise
    "markdown-it-py": "python3-markdown-it-py",
    "mdurl": "python3-mdurl",
    "pygments": "python3-pygments",
}

# In openwrt/packages lang/python (checked on its master): no Makefile needed in our feed.
OFFICIAL = {"python3-light", "python3-ruamel-yaml", "python3-click", "python3-cryptography",
            "python3-uci", "python3-ubus", "python3-pygments"}

# Which extras end up on the router: the local transport's bindings.
ROUTER_EXTRAS = ("openwrt",)


def _var(makefile: str, name: str) -> str:
    m = re.search(rf"^{name}:=(.*)$", makefile, re.MULTILINE)
    assert m, f"{name} missing"
    return m.group(1).strip()


def _depends(makefile: str, package: str) -> set[str]:
    block = re.search(rf"define Package/{re.escape(package)}\n(.*?)\nendef", makefile, re.DOTALL)
    assert block, f"Package/{package} missing"
    m = re.search(r"DEPENDS:=((?:.*\\\n)*.*)", block.group(1))
    assert m, f"DEPENDS of {package} missing"
    return {w.lstrip("+") for w in m.group(1).replace("\\\n", " ").split()}


def _dist(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]


def _own_packages() -> dict[str, Path]:
    out = {}
    for mk in FEED.glob("*/*/Makefile"):
        out.update({m: mk for m in re.findall(r"^define Package/([\w.-]+)\n", mk.read_text(), re.MULTILINE)})
    for mk in FEED.glob("lang/python/*/Makefile"):
        out.update({m: mk for m in re.findall(r"^define Package/([\w.-]+)\n", mk.read_text(), re.MULTILINE)})
    return out


MWANCTL_MK = (FEED / "net" / "mwanctl" / "Makefile").read_text()


def test_version_equals_pyproject() -> None:
    assert _var(MWANCTL_MK, "PKG_VERSION") == PYPROJECT["project"]["version"]


def test_depends_are_exactly_the_router_dependencies() -> None:
    reqs = list(PYPROJECT["project"]["dependencies"])
    for extra in ROUTER_EXTRAS:
        reqs += PYPROJECT["project"]["optional-dependencies"][extra]
    dists = [_dist(r) for r in reqs]
    unmapped = [d for d in dists if d not in PYPI_TO_OPENWRT]
    assert not unmapped, f"add these to PYPI_TO_OPENWRT: {unmapped}"
    wanted = {"python3-light"} | {PYPI_TO_OPENWRT[d] for d in dists if PYPI_TO_OPENWRT[d]}
    assert _depends(MWANCTL_MK, "mwanctl") == wanted


def test_workstation_only_extras_stay_off_the_router() -> None:
    deps = _depends(MWANCTL_MK, "mwanctl")
    for extra in ("ssh", "ubus"):
        for req in PYPROJECT["project"]["optional-dependencies"][extra]:
            assert PYPI_TO_OPENWRT[_dist(req)] is None
    assert not any("paramiko" in d or "httpx" in d for d in deps)


def test_plain_pip_install_can_deploy_over_ssh_and_ubus() -> None:
    """Issue 9: `pip install mwanctl` is enough on a workstation; only the router bindings are extra."""
    core = {_dist(r) for r in PYPROJECT["project"]["dependencies"]}
    assert {"paramiko", "httpx"} <= core
    assert {_dist(r) for r in PYPROJECT["project"]["optional-dependencies"]["openwrt"]} == {"pyuci", "ubus"}
    assert not core & {"pyuci", "ubus"}


@pytest.mark.parametrize("pkg", sorted(_own_packages()))
def test_every_dependency_is_official_or_in_this_feed(pkg: str) -> None:
    own = _own_packages()
    text = own[pkg].read_text()
    missing = {d for d in _depends(text, pkg) if d.startswith("python3-")} - OFFICIAL - set(own)
    assert not missing, f"{pkg} needs {missing}: add Makefiles under openwrt_feed/lang/python/"


@pytest.mark.parametrize("mk", sorted(FEED.glob("lang/python/*/Makefile")), ids=lambda p: p.parent.name)
def test_library_makefiles_follow_the_feed_pattern(mk: Path) -> None:
    text = mk.read_text()
    assert re.fullmatch(r"[0-9a-f]{64}", _var(text, "PKG_HASH"))
    order = [text.index(s) for s in ("pypi.mk", "$(INCLUDE_DIR)/package.mk", "python3-package.mk")]
    assert order == sorted(order), "pypi.mk before package.mk before python3-package.mk"
    name = _var(text, "PKG_NAME")
    assert name.startswith("python-") and f"Py3Package,python3-{name[7:]})" in text


def test_package_installs_the_shipped_rpcd_acl() -> None:
    assert "mwanctl/data/rpcd-acl-mwanctl.json" in MWANCTL_MK
    assert (ROOT / "mwanctl" / "data" / "rpcd-acl-mwanctl.json").is_file()
