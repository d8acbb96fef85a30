# SPDX-License-Identifier: GPL-3.0-or-later
"""Find the installed model packages, pick one per kind, and say what is wrong with the rest.

Packages come from two places:

- *shipped*: ``<extension>/models/*`` (installed with the extension);
- *user*: inside Blender, ``bpy.utils.extension_path_user(<extension>, path="models")``;
  outside Blender the folders in ``SPARSE_MOTION_MODELS`` (``os.pathsep``-separated) or an
  explicit list. A user folder may itself be a package (it has ``manifest.json``) or hold
  packages as sub-folders.

Rules (see ``docs/model-packages.md``):

- A name identifies a model. When a user package has the name of a shipped one, the user
  package is used only if its version is higher; otherwise the shipped one stays and the user
  copy is reported as unused. Two packages of the same name and source: the higher version.
- Default per kind: the preferred name if given and usable, else packages flagged
  ``"default": true`` before others, shipped before user, then by name.
- A package that cannot be read (bad JSON, missing or corrupt files) is *broken*; one that is
  intact but unusable here (format too new, another skeleton or representation, its text
  encoder missing) is *incompatible*. Both are listed with a message and never stop the
  listing; ``get``/``default`` raise :class:`ModelPackageError` with that message.

Only ``load_package``'s cheap checks run while listing (no hashing, no sessions).
"""
from __future__ import annotations

import json
import os
import sys
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .errors import ModelPackageError
from .package import (
    TEXT_ENCODER_KIND, IncompatiblePackageError, ModelPackage, PackageError, load_package,
    version_satisfies,
)

__all__ = [
    "ENV_VAR", "SUPPORTED_SKELETONS", "SUPPORTED_REPRESENTATIONS", "SHIPPED", "USER",
    "OK", "BROKEN", "INCOMPATIBLE", "UNUSED", "DEFAULT_ITEM", "NONE_ITEM", "PackageRecord", "Registry",
    "shipped_models_dir", "blender_user_models_dir", "env_models_dirs", "user_models_dirs",
    "get_registry", "enum_items",
]

ENV_VAR = "SPARSE_MOTION_MODELS"
#: Skeletons and motion representations this version of the extension can use.
SUPPORTED_SKELETONS = ("bandai-21",)
SUPPORTED_REPRESENTATIONS = {"humanml3d-257": 257}

SHIPPED, USER = "shipped", "user"
OK, BROKEN, INCOMPATIBLE, UNUSED = "ok", "broken", "incompatible", "unused"
#: Enum identifiers that are not model names (names are lowercase, so these cannot clash).
DEFAULT_ITEM, NONE_ITEM = "DEFAULT", "NONE"


def shipped_models_dir() -> Path:
    """``<extension>/models``."""
    return Path(__file__).resolve().parents[1] / "models"


def _extension_package() -> str:
    return (__package__ or "").rpartition(".")[0]


def blender_user_models_dir() -> Path | None:
    """The extension's user ``models`` folder (created), when running inside Blender as an
    installed extension; None otherwise. Never imports bpy itself."""
    bpy = sys.modules.get("bpy")
    ext = _extension_package()
    if bpy is None or not ext.startswith("bl_ext."):
        return None
    try:
        path = bpy.utils.extension_path_user(ext, path="models", create=True)
    except Exception:
        return None
    return Path(path) if path else None


def env_models_dirs() -> list[Path]:
    """The folders in ``SPARSE_MOTION_MODELS``."""
    value = os.environ.get(ENV_VAR, "")
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]


def user_models_dirs() -> list[Path]:
    """User package folders: ``SPARSE_MOTION_MODELS`` then Blender's user folder."""
    dirs = env_models_dirs()
    if (bl := blender_user_models_dir()) is not None:
        dirs.append(bl)
    return dirs


@dataclass
class PackageRecord:
    """One folder found while scanning: its package when readable, its status (``ok``,
    ``broken``, ``incompatible`` or ``unused``) and a message for anything but ``ok``."""

    path: Path
    source: str
    status: str
    package: ModelPackage | None = None
    message: str | None = None
    name: str | None = None
    kind: str | None = None
    version: str | None = None

    @property
    def usable(self) -> bool:
        return self.status == OK

    def __str__(self) -> str:
        what = f"{self.name or self.path.name} {self.version or ''}".strip()
        text = f"[{self.status}] {what} ({self.kind or '?'}, {self.source}) {self.path}"
        return text + (f": {self.message}" if self.message else "")


def _candidate_dirs(root: Path) -> list[Path]:
    if (root / "manifest.json").is_file():
        return [root]
    try:
        subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError:
        return []
    return [p for p in subdirs if not p.name.startswith((".", "_"))]


def _stable_number(name: str, used: set[int]) -> int:
    n = zlib.crc32(name.encode("utf-8")) & 0x3FFFFFFF or 1
    while n in used:
        n = n % 0x3FFFFFFF + 1
    used.add(n)
    return n


class Registry:
    """The model packages found in ``shipped_dirs`` and ``user_dirs``.

    ``shipped_dirs`` default ``[<extension>/models]``; ``user_dirs`` default
    :func:`user_models_dirs` (looked up again by every :meth:`scan`). ``skeletons`` / ``representations``: what this extension can
    use (None: accept any). The folders are scanned on construction and by :meth:`scan`.
    """

    def __init__(self, shipped_dirs: Iterable[str | os.PathLike] | None = None,
                 user_dirs: Iterable[str | os.PathLike] | None = None, *,
                 skeletons: Sequence[str] | None = SUPPORTED_SKELETONS,
                 representations: Mapping[str, int] | None = SUPPORTED_REPRESENTATIONS):
        self.shipped_dirs = [Path(p) for p in shipped_dirs] if shipped_dirs is not None \
            else [shipped_models_dir()]
        self._default_user_dirs = user_dirs is None  # re-read from the environment on scan()
        self.user_dirs = [Path(p) for p in user_dirs] if user_dirs is not None \
            else user_models_dirs()
        self.skeletons = tuple(skeletons) if skeletons is not None else None
        self.representations = dict(representations) if representations is not None else None
        self.records: list[PackageRecord] = []
        self._lock = threading.Lock()
        self.scan()

    # --- scanning ------------------------------------------------------------------------

    def scan(self) -> "Registry":
        """Read every folder again (cheap: manifests and file sizes only); default user folders
        are looked up again too, so a changed ``SPARSE_MOTION_MODELS`` takes effect."""
        if self._default_user_dirs:
            self.user_dirs = user_models_dirs()
        records: list[PackageRecord] = []
        seen: set[str] = set()
        for source, roots in ((SHIPPED, self.shipped_dirs), (USER, self.user_dirs)):
            for root in roots:
                if not root.is_dir():
                    if source == USER:
                        records.append(PackageRecord(
                            root, source, BROKEN, message=f"Model folder {root} does not exist — "
                            f"create it or remove it from {ENV_VAR}"))
                    continue
                for d in _candidate_dirs(root):
                    real = os.path.realpath(d)
                    if real in seen:
                        continue
                    seen.add(real)
                    records.append(self._load(d, source))
        self._check_compatibility(records)
        self._resolve(records)
        with self._lock:
            self.records = records
        return self

    @staticmethod
    def _peek(directory: Path) -> dict:
        """name/kind/version of an unusable package, as far as its manifest tells."""
        try:
            raw = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        except Exception:
            return {}
        if not isinstance(raw, dict):
            return {}
        return {k: raw[k] for k in ("name", "kind", "version") if isinstance(raw.get(k), str)}

    def _load(self, directory: Path, source: str) -> PackageRecord:
        try:
            pkg = load_package(directory)
        except PackageError as exc:
            status = INCOMPATIBLE if isinstance(exc, IncompatiblePackageError) else BROKEN
            return PackageRecord(directory, source, status, message=str(exc), **self._peek(directory))
        except Exception as exc:  # never let one folder break the listing
            return PackageRecord(directory, source, BROKEN, message=(
                f"Folder {directory} could not be read as a model package ({exc}) — reinstall "
                "the model, or remove the folder"), **self._peek(directory))
        return PackageRecord(directory, source, OK, package=pkg, name=pkg.name, kind=pkg.kind,
                             version=pkg.version)

    def _incompatible(self, pkg: ModelPackage) -> str | None:
        fix = f"update the Sparse Motion extension, or remove the folder {pkg.path}"
        if pkg.kind == TEXT_ENCODER_KIND:
            return None
        if self.skeletons is not None and pkg.skeleton not in self.skeletons:
            return (f"{pkg.label} is made for the skeleton '{pkg.skeleton}', this version of "
                    f"Sparse Motion supports {', '.join(self.skeletons)} — {fix}")
        rep = pkg.representation or {}
        if self.representations is not None:
            want = self.representations.get(rep.get("name"))
            if want is None:
                return (f"{pkg.label} uses the motion representation '{rep.get('name')}', this "
                        f"version of Sparse Motion supports {', '.join(self.representations)} — {fix}")
            if want != rep.get("feature_dim"):
                return (f"{pkg.label} says representation '{rep.get('name')}' has "
                        f"{rep.get('feature_dim')} features, it has {want} — the package was "
                        f"built wrongly; reinstall the model, or remove the folder {pkg.path}")
        return None

    def _check_compatibility(self, records: list[PackageRecord]) -> None:
        for r in records:
            if r.usable and (msg := self._incompatible(r.package)) is not None:
                r.status, r.message = INCOMPATIBLE, msg

    @staticmethod
    def _best(group: list[PackageRecord]) -> PackageRecord:
        # highest version; on a tie the first found (sorted folder order)
        best = group[0]
        for r in group[1:]:
            if r.package.version_key > best.package.version_key:
                best = r
        return best

    def _resolve_group(self, group: list[PackageRecord]) -> None:
        shipped = [r for r in group if r.source == SHIPPED]
        user = [r for r in group if r.source == USER]
        s = self._best(shipped) if shipped else None
        u = self._best(user) if user else None
        if s is not None and u is not None:
            winner = u if u.package.version_key > s.package.version_key else s
        else:
            winner = s or u
        for r in group:
            if r is winner:
                continue
            r.status = UNUSED
            w = winner.package
            if r.source == USER and winner.source == SHIPPED:
                r.message = (f"User model '{r.name}' {r.version} ({r.path}) is not used: the "
                             f"extension ships version {w.version} of it, and a user copy is "
                             "used only when its version is higher")
            elif r.source == SHIPPED and winner.source == USER:
                r.message = (f"Model '{r.name}' {r.version} shipped with the extension is replaced "
                             f"by the user copy {w.version} ({w.path})")
            else:
                r.message = (f"Model '{r.name}' {r.version} ({r.path}) is not used: {w.path} has "
                             f"the same name and version {w.version}")

    def _resolve(self, records: list[PackageRecord]) -> None:
        # 1. text encoders (other models depend on them), 2. their dependants, 3. the rest
        def groups(recs):
            out: dict[str, list[PackageRecord]] = {}
            for r in recs:
                if r.usable:
                    out.setdefault(r.name, []).append(r)
            return out

        encoders = [r for r in records if r.kind == TEXT_ENCODER_KIND]
        for group in groups(encoders).values():
            self._resolve_group(group)
        enc_by_name = {r.name: r.package for r in encoders if r.usable}
        others = [r for r in records if r.kind != TEXT_ENCODER_KIND]
        for r in others:
            if not r.usable or not r.package.text_encoder:
                continue
            req = r.package.text_encoder
            need, spec = req["name"], str(req.get("version", "*"))
            have = enc_by_name.get(need)
            if have is None or not version_satisfies(have.version, spec):
                found = f"version {have.version} is installed" if have else "it is not installed"
                r.status = INCOMPATIBLE
                r.message = (f"{r.package.label} needs the text encoder '{need}' {spec}, but "
                             f"{found} — reinstall the extension, or remove the folder {r.path}")
        for name, group in groups(others).items():
            if name in enc_by_name:
                for r in group:
                    r.status, r.message = BROKEN, (
                        f"Model '{name}' ({r.path}) has the name of the text encoder "
                        f"{enc_by_name[name].path}; model names must be unique — rename or "
                        "remove it")
                continue
            self._resolve_group(group)

    # --- queries -------------------------------------------------------------------------

    @property
    def problems(self) -> list[PackageRecord]:
        """Records that are not used: broken, incompatible or unused (with messages)."""
        return [r for r in self.records if not r.usable]

    def packages(self, kind: str | Sequence[str] | None = None) -> list[ModelPackage]:
        """Usable packages (one per name), of ``kind`` (or of any of several kinds) if given,
        sorted by kind and name."""
        kinds = _kinds(kind)
        pkgs = [r.package for r in self.records if r.usable and (kinds is None or r.kind in kinds)]
        return sorted(pkgs, key=lambda p: (p.kind, p.name))

    def kinds(self) -> list[str]:
        return sorted({r.kind for r in self.records if r.usable})

    def record(self, name: str) -> PackageRecord | None:
        """The used record of ``name``, else the first unusable one with that name."""
        named = [r for r in self.records if r.name == name]
        for r in named:
            if r.usable:
                return r
        return named[0] if named else None

    def get(self, name: str, kind: str | Sequence[str] | None = None) -> ModelPackage:
        """The usable package ``name`` (of ``kind``, or one of several kinds, if given);
        ModelPackageError otherwise, with the reason when the package is there but broken or
        incompatible."""
        r = self.record(name)
        kinds = _kinds(kind)
        if r is not None and r.usable and (kinds is None or r.kind in kinds):
            return r.package
        if r is not None and r.usable:
            raise ModelPackageError(f"Model '{name}' is a {r.kind} model, not a "
                                    f"{_kind_text(kind)} model — choose another model")
        if r is not None and r.status in (BROKEN, INCOMPATIBLE):
            cls = IncompatiblePackageError if r.status == INCOMPATIBLE else PackageError
            raise cls(r.message, problem=r.status, package=name, path=r.path)
        have = ", ".join(p.name for p in self.packages(kind)) or "none"
        what = f"{_kind_text(kind)} models" if kind else "models"
        raise ModelPackageError(f"No model named '{name}' is installed (installed {what}: "
                                f"{have}) — reinstall the extension or choose another model")

    def default(self, kind: str | Sequence[str], preferred: str | None = None) -> ModelPackage:
        """The package to use for ``kind``: ``preferred`` when it is a usable package of that
        kind, else flagged ``default`` first, shipped before user, then by name.
        ModelPackageError when none is usable (naming the broken ones). Several kinds (a
        tuple, in order of preference): ``preferred`` if it is of one of them, else the
        default of the first kind that has a usable package."""
        kinds = _kinds(kind)
        if len(kinds) > 1:
            for k in kinds:
                if preferred and any(p.name == preferred for p in self.packages(k)):
                    return self.default(k, preferred)
            for k in kinds:
                if self.packages(k):
                    return self.default(k)
        pkgs = self.packages(kinds)
        if preferred:
            for p in pkgs:
                if p.name == preferred:
                    return p
        if pkgs:
            source = {id(r.package): r.source for r in self.records if r.usable}
            return min(pkgs, key=lambda p: (not p.is_default, source[id(p)] != SHIPPED, p.name))
        bad = [r for r in self.problems if r.kind in kinds and r.status != UNUSED]
        detail = (": " + "; ".join(r.message for r in bad)) if bad else ""
        raise ModelPackageError(f"No usable {_kind_text(kind)} model is installed{detail}"
                                + ("" if bad else " — reinstall the extension"))

    def resolve(self, kind: str | Sequence[str], choice: str | None = None) -> ModelPackage:
        """The package an enum value (see :meth:`enum_items`) stands for: ``DEFAULT``, ``NONE``
        or an empty/unknown value (a model since removed) give :meth:`default`."""
        if choice and choice not in (DEFAULT_ITEM, NONE_ITEM):
            r = self.record(choice)
            if r is not None and r.usable and r.kind in _kinds(kind):
                return r.package
            if r is not None and r.status in (BROKEN, INCOMPATIBLE):
                return self.get(choice, kind)  # raises with the reason
        return self.default(kind)

    def enum_items(self, kind: str | Sequence[str]) -> list[tuple[str, str, str, int]]:
        """Items for a Blender ``EnumProperty`` of the usable models of ``kind`` (or of several
        kinds: a tuple, in order of preference for the default; e.g. every text-to-motion
        kind, ``generation.KINDS``): first
        ``DEFAULT`` (number 0, what an unset property reads as: the kind's default model),
        then (name, label, description, number) per model by name, the number stable per
        name so a saved choice survives models being added or removed. Only a ``NONE`` item
        when there are none. Turn the value into a package with :meth:`resolve`. Keep the
        returned list referenced while Blender uses it (module-level :func:`enum_items` does)."""
        pkgs = self.packages(kind)
        what = _kind_text(kind)
        if not pkgs:
            bad = [r for r in self.problems if r.kind in _kinds(kind) and r.status != UNUSED]
            why = f" ({len(bad)} broken or incompatible, see the system console)" if bad else ""
            return [(NONE_ITEM, f"No {what} model", f"No usable {what} model is installed{why}", 0)]
        first = self.default(kind)
        source = {id(r.package): r.source for r in self.records if r.usable}
        used: set[int] = {0}
        items = [(DEFAULT_ITEM, f"Default ({first.name} {first.version})",
                  f"The default {what} model, now {first.name} {first.version}", 0)]
        for p in pkgs:
            notes = [f"{p.kind} model, version {p.version}"]
            if p is first:
                notes.append("the default")
            if source[id(p)] == USER:
                notes.append("installed by you")
            if not p.commercial_use:
                notes.append("non-commercial use only")
            desc = "; ".join(notes) + (f". {p.description}" if p.description else "")
            items.append((p.name, f"{p.name} {p.version}", desc, _stable_number(p.name, used)))
        return items

    def report(self) -> str:
        """One line per folder found, for logs and bug reports."""
        return "\n".join(str(r) for r in self.records) or "no model packages found"


def _kinds(kind) -> tuple | None:
    """``kind`` as a tuple of kinds (None: any)."""
    return None if kind is None else (kind,) if isinstance(kind, str) else tuple(kind)


def _kind_text(kind) -> str:
    return kind if isinstance(kind, str) else " or ".join(kind)


# --- a process-wide registry (Blender UI) ---------------------------------------------------

_registry: Registry | None = None
_registry_lock = threading.Lock()
_enum_keepalive: dict[str, list] = {}


def get_registry(refresh: bool = False) -> Registry:
    """The registry of the default folders, scanned on first use (``refresh`` rescans)."""
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = Registry()
        elif refresh:
            _registry.scan()
        return _registry


def enum_items(kind: str | Sequence[str], registry: Registry | None = None
               ) -> list[tuple[str, str, str, int]]:
    """``Registry.enum_items`` for a dynamic ``EnumProperty``; the returned list is kept
    referenced here, because Blender needs the strings to outlive the callback::

        model: EnumProperty(name="Model", items=lambda self, context: enum_items("smdm"))
        ...
        package = get_registry().resolve("smdm", props.model)
    """
    items = (registry or get_registry()).enum_items(kind)
    _enum_keepalive[kind if isinstance(kind, str) else tuple(kind)] = items
    return items
