# SPDX-License-Identifier: GPL-3.0-or-later
"""Bone mapping: which bone of a rig drives each canonical joint (no bpy).

:func:`detect_mapping` works from bone names, parents and (optionally) rest head positions:

1. **Known conventions** (:data:`.conventions.CONVENTIONS`: Rigify FK controls, the Rigify /
   Blender human metarig, Mixamo, Unreal 4 and 5 mannequins, Reallusion CC_Base, the canonical
   names): exact names (CC_Base case-insensitive), namespaces such as ``mixamorig:`` ignored.
   The family matching most joints, bones in hierarchy order, names the mapping's
   convention.
2. **Generic names** fill the gaps: a bone name is split into tokens (``LeftUpLeg`` → left,
   up, leg; ``upperarm_l`` → upperarm, l; ``thigh.L`` → thigh, l), side tokens give the side,
   keywords the joint (thigh/upleg → upper leg, calf/shin → lower leg, clavicle → shoulder…);
   twist, IK, pole, mechanism (``MCH-``/``ORG-``/``DEF-``), finger and face bones are
   ignored.
3. **Topology** disambiguates: limb chains must descend from each other (a lower arm below its
   upper arm…), the chest is the lowest common ancestor of the two arms, the spine is the
   first bone on the way from the hips to the chest and the neck the first one on the way from
   the chest to the head; a bare ``Leg`` is the lower leg below an upper leg, else the upper
   leg; a limb without a side in its name gets it from which side of the body it is on.
4. Where names fail, a **topology-only** pass (needs rest heads) looks for a hips bone with
   two mirror-twin chains going down (legs) and a chain going up that branches into two
   twins (arms) and a neck; it refuses bodies whose "spine" is not opposite the legs
   (quadrupeds).

The result is a :class:`BoneMapping`: canonical joint → bone name or None, a confidence in
[0, 1], the unmapped joints, and an optional root bone above the hips (for root motion).
Mappings are saved and loaded as JSON presets.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from . import conventions as cv
from .posecheck import standing_problems

PRESET_FORMAT = "sparse_motion.retarget_mapping"
PRESET_VERSION = 1

# Quality of each kind of match (confidence weights).
_Q_TABLE, _Q_TOKEN, _Q_SUBSTR, _Q_TOPO = 1.0, 0.9, 0.8, 0.6


@dataclass
class BoneMapping:
    """Canonical joint → target bone.

    bones: every canonical joint (:data:`.conventions.JOINTS`) → bone name or None.
    root: a bone above the hips that can carry root motion (None if the rig has none).
    convention: key of the detected convention (``"RIGIFY"``, ``"MIXAMO"``… or
        ``"GENERIC"``, ``"TOPOLOGY"``, ``"CUSTOM"``).
    confidence: 0..1 (1: every joint matched a known convention by name).
    notes: what detection decided and why (shown to the user).
    """

    bones: dict = field(default_factory=lambda: {j: None for j in cv.JOINTS})
    root: str | None = None
    convention: str = "CUSTOM"
    confidence: float = 1.0
    notes: list = field(default_factory=list)
    name: str = ""

    def __post_init__(self):
        bones = {j: None for j in cv.JOINTS}
        for j, b in dict(self.bones).items():
            if j not in bones:
                raise InputError(f"Unknown canonical joint '{j}' in the bone mapping "
                                 f"(joints are {', '.join(cv.JOINTS)})")
            bones[j] = b or None
        self.bones = bones

    @property
    def unmapped(self) -> list:
        return [j for j in cv.JOINTS if not self.bones[j]]

    @property
    def mapped(self) -> dict:
        return {j: b for j, b in self.bones.items() if b}

    def missing_core(self) -> list:
        """Core joints (and groups) without a bone, as readable names."""
        out = [j for j in cv.CORE_JOINTS if not self.bones[j]]
        for group in cv.CORE_ANY:
            if not any(self.bones[j] for j in group):
                out.append(" or ".join(group))
        return out

    def copy(self) -> "BoneMapping":
        return BoneMapping(dict(self.bones), self.root, self.convention, self.confidence,
                           list(self.notes), self.name)

    def summary(self) -> str:
        n = len(self.mapped)
        label = cv.CONVENTIONS_BY_KEY[self.convention].label if self.convention in \
            cv.CONVENTIONS_BY_KEY else self.convention.title()
        text = (f"{label}: {n} of {len(cv.JOINTS)} joints mapped "
                f"({100 * self.confidence:.0f} % confidence)")
        if self.unmapped:
            text += f"; unmapped: {', '.join(self.unmapped)}"
        return text

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        return {
            "format": PRESET_FORMAT,
            "version": PRESET_VERSION,
            "name": self.name,
            "convention": self.convention,
            "root": self.root,
            "bones": {j: self.bones[j] for j in cv.JOINTS},
        }

    @classmethod
    def from_dict(cls, data) -> "BoneMapping":
        if not isinstance(data, dict) or data.get("format") != PRESET_FORMAT:
            raise InputError("Not a Sparse Motion bone mapping preset (missing "
                             f"\"format\": \"{PRESET_FORMAT}\")")
        version = data.get("version", 1)
        if not isinstance(version, int) or version > PRESET_VERSION:
            raise InputError(f"Bone mapping preset version {version!r} is newer than this "
                             f"extension understands ({PRESET_VERSION})")
        bones = data.get("bones")
        if not isinstance(bones, dict):
            raise InputError("Bone mapping preset has no \"bones\" table")
        for j, b in bones.items():
            if b is not None and not isinstance(b, str):
                raise InputError(f"Bone mapping preset: joint '{j}' maps to {b!r}, not a bone name")
        root = data.get("root")
        if root is not None and not isinstance(root, str):
            raise InputError(f"Bone mapping preset: root {root!r} is not a bone name")
        return cls(bones, root or None, str(data.get("convention") or "CUSTOM"), 1.0, [],
                   str(data.get("name") or ""))


def mapping_to_json(mapping: BoneMapping) -> str:
    return json.dumps(mapping.to_dict(), indent=2) + "\n"


def mapping_from_json(text: str) -> BoneMapping:
    try:
        data = json.loads(text)
    except (ValueError, TypeError) as exc:
        raise InputError(f"Bone mapping preset is not valid JSON: {exc}") from None
    return BoneMapping.from_dict(data)


def save_preset(mapping: BoneMapping, path) -> None:
    path = os.fspath(path)
    tmp = path + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(mapping_to_json(mapping))
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise InputError(f"Cannot write '{path}': {exc.strerror or exc}") from None


def load_preset(path) -> BoneMapping:
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise InputError(f"Cannot read '{os.path.basename(path)}': {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"'{os.path.basename(path)}' is not a text (JSON) file") from None
    mapping = mapping_from_json(text)
    if not mapping.name:
        mapping.name = os.path.splitext(os.path.basename(path))[0]
    return mapping


def convention_preset(key: str) -> BoneMapping:
    """The mapping of a known convention (first candidate names), as a preset."""
    conv = cv.CONVENTIONS_BY_KEY.get(key)
    if conv is None:
        raise InputError(f"Unknown rig convention '{key}' "
                         f"({', '.join(cv.CONVENTIONS_BY_KEY)})")
    bones = conv.preset()
    if conv.prefix:
        bones = {j: (conv.prefix + b if b else None) for j, b in bones.items()}
    return BoneMapping(bones, conv.root[0] if conv.root else None, key, 1.0, [], conv.label)


# =========================================================================== the bone tree


class BoneTree:
    """Names, parents and (optional) rest heads of a rig's bones, with tree queries."""

    def __init__(self, names, parents, heads=None):
        self.names = [str(n) for n in names]
        self.index = {n: i for i, n in enumerate(self.names)}
        if len(self.index) != len(self.names):
            raise InputError("Bone names must be unique")
        par = []
        for p in parents:
            if p is None or (isinstance(p, (int, np.integer)) and p < 0):
                par.append(-1)
            elif isinstance(p, (int, np.integer)):
                par.append(int(p))
            else:
                par.append(self.index[str(p)])
        self.parents = par
        self.heads = None if heads is None else np.asarray(heads, dtype=np.float64).reshape(-1, 3)
        self.children = [[] for _ in self.names]
        for i, p in enumerate(par):
            if p >= 0:
                self.children[p].append(i)
        self.depth = []
        for i in range(len(par)):
            d, p = 0, par[i]
            while p >= 0:
                d, p = d + 1, par[p]
            self.depth.append(d)

    def __len__(self):
        return len(self.names)

    def ancestors(self, i):
        out, p = [], self.parents[i]
        while p >= 0:
            out.append(p)
            p = self.parents[p]
        return out

    def is_ancestor(self, a, b) -> bool:
        """True when bone ``a`` is a strict ancestor of ``b``."""
        p = self.parents[b]
        while p >= 0:
            if p == a:
                return True
            p = self.parents[p]
        return False

    def lca(self, a, b):
        anc = set([a] + self.ancestors(a))
        for x in [b] + self.ancestors(b):
            if x in anc:
                return x
        return None

    def path(self, a, b):
        """Bones strictly between ancestor ``a`` and descendant ``b`` (top down)."""
        out, p = [], self.parents[b]
        while p >= 0 and p != a:
            out.append(p)
            p = self.parents[p]
        return out[::-1] if p == a else []

    def subtree_size(self, i):
        n, stack = 0, [i]
        while stack:
            x = stack.pop()
            n += 1
            stack.extend(self.children[x])
        return n


def _strip_namespace(name: str) -> str:
    return re.split(r"[:|]", name)[-1]


def tokens(name: str) -> list:
    """``'mixamorig:LeftUpLeg'`` → ``['left', 'up', 'leg']``; ``'thigh_fk.L'`` →
    ``['thigh', 'fk', 'l']``."""
    n = _strip_namespace(name)
    n = re.sub(r"([a-z])([A-Z])", r"\1 \2", n)
    n = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", n)
    n = re.sub(r"([A-Za-z])([0-9])", r"\1 \2", n)
    n = re.sub(r"([0-9])([A-Za-z])", r"\1 \2", n)
    return [t.lower() for t in re.split(r"[^A-Za-z0-9]+", n) if t]


def _excluded(name: str) -> bool:
    """A helper, end, twist, IK, mechanism… bone by its name."""
    if _strip_namespace(name).startswith(cv.EXCLUDE_PREFIXES):
        return True
    return any(t in cv.EXCLUDE_TOKENS for t in tokens(name))


def classify(name: str):
    """What a bone name says about itself: ``(base, side, quality)`` or None.

    base: a canonical base name (``"UpperArm"``…), or ``"Leg"`` (upper or lower leg, decided
    by the hierarchy); side: ``"L"``, ``"R"`` or None; quality: exact token or substring.
    """
    stripped = _strip_namespace(name)
    if stripped.startswith(cv.EXCLUDE_PREFIXES):
        return None
    toks = tokens(name)
    if not toks or any(t in cv.EXCLUDE_TOKENS for t in toks):
        return None
    side = None
    body = []
    for t in toks:
        if t in cv.LEFT_TOKENS:
            side = side or "L"
        elif t in cv.RIGHT_TOKENS:
            side = side or "R"
        elif not t.isdigit():
            body.append(t)
    if not body:
        return None
    joined = "".join(body)
    for quality, test in ((_Q_TOKEN, lambda k: k in body or k == joined),
                          (_Q_SUBSTR, lambda k: k in joined)):
        for key, base in cv.KEYWORDS:
            if test(key):
                if base == "Hips" and side is not None:
                    if key == "hip":  # "LeftHip": the thigh of some rigs
                        return "UpperLeg", side, quality
                    return None
                if base in cv.CENTRE and side is not None:
                    return None
                return base, side, quality
    return None


# =========================================================================== detection


def detect_mapping(names, parents, heads=None, up=None) -> BoneMapping:
    """Detect the bone mapping of a rig from its bone names, parents (names or indices; None
    or -1 for roots) and optional rest heads (armature space, any unit). ``up``: the world's
    up direction in armature space, if known.

    With heads, the confidence also reflects the rest pose: one that does not stand (legs
    pointing up, head below the hips: :func:`.posecheck.standing_problems`) keeps at most
    40 % and gets a note.

    Never raises for an unusable rig: the result lists what is unmapped; see
    :func:`require_core`.
    """
    tree = BoneTree(names, parents, heads)
    lower, exact = {}, {}
    for i, n in enumerate(tree.names):
        lower.setdefault(_strip_namespace(n).lower(), i)
        exact.setdefault(_strip_namespace(n), i)
    notes = []

    # ---- 1. known conventions
    best, best_score, best_map = None, 0.0, {}
    total = sum(_weight(j) for j in cv.JOINTS)
    for conv in cv.CONVENTIONS:
        table = exact if conv.case_sensitive else lower
        key = (lambda n: n) if conv.case_sensitive else str.lower
        found = {}
        for j in cv.JOINTS:
            for cand in conv.candidates(j):
                i = table.get(key(cand))
                if i is not None and i not in found.values():
                    found[j] = i
                    break
        score = sum(_weight(j) for j in found) / total
        # bones out of order (a hips bone that is not above the legs…) count against
        score -= sum(_weight(j) for j in found
                     if (a := _mapped_ancestor_joint(j, found)) is not None
                     and not tree.is_ancestor(found[a], found[j])) / total
        score += 0.05 * sum(1 for s in conv.signature if key(_strip_namespace(s)) in table)
        if conv.prefix and any(n.lower().startswith(conv.prefix.rstrip(":").lower())
                               and _strip_namespace(n) != n for n in tree.names):
            score += 0.1  # Mixamo's namespace: the same names as HumanIK's otherwise
        if score > best_score:
            best, best_score, best_map = conv, score, found
    quality = {}
    assigned = {}
    convention = "GENERIC"
    if best is not None and best_score >= 0.5:
        convention = best.key
        assigned = dict(best_map)
        quality = {j: _Q_TABLE for j in assigned}
        notes.append(f"Bone names follow the {best.label} convention")

    # ---- 2./3. generic names + topology
    generic, gq, gnotes = _generic(tree, assigned)
    for j, i in generic.items():
        if j not in assigned:
            assigned[j] = i
            quality[j] = gq[j]
    notes += gnotes
    trusted = {j for j, q in quality.items() if q == _Q_TABLE}
    _check_chains(tree, assigned, quality, notes, trusted=trusted)

    # ---- 4. topology only, where names left core joints unmapped
    missing = [j for j in cv.CORE_JOINTS if j not in assigned]
    if missing and tree.heads is not None:
        topo, tnotes = _topology(tree)
        notes += tnotes
        used = set(assigned.values())
        filled = []
        for j, i in topo.items():
            if j not in assigned and i not in used and _consistent(tree, assigned, j, i):
                assigned[j] = i
                quality[j] = _Q_TOPO
                used.add(i)
                filled.append(j)
        if filled:
            notes.append(f"Mapped from the hierarchy alone: {', '.join(filled)}")
            if convention == "GENERIC" and len(filled) > len(assigned) / 2:
                convention = "TOPOLOGY"

    bones = {j: (tree.names[assigned[j]] if j in assigned else None) for j in cv.JOINTS}
    root = _find_root(tree, assigned.get("Hips"),
                      best if convention == getattr(best, "key", None) else None, lower)
    total = sum(_weight(j) for j in cv.JOINTS)
    confidence = sum(_weight(j) * quality.get(j, 0.0) for j in cv.JOINTS) / total
    if any(bones[j] is None for j in cv.CORE_JOINTS):
        confidence *= 0.5
    if tree.heads is not None:
        problems = standing_problems(
            {j: tree.heads[i] for j, i in assigned.items()}, up)
        if problems:
            confidence = min(confidence, 0.4)
            notes.append("The rest pose does not stand (" + "; ".join(problems) + "): "
                         "retargeting works from a frame of the rig's action where it stands")
    return BoneMapping(bones, root, convention, round(float(confidence), 3), notes)


def require_core(mapping: BoneMapping, rig_name: str = "the armature") -> None:
    """Raise :class:`InputError` naming every core joint that could not be mapped."""
    missing = mapping.missing_core()
    if not missing:
        return
    quadruped = any("quadruped" in n for n in mapping.notes)
    hint = (" It looks like a quadruped or another non-humanoid rig; retargeting needs a "
            "biped (two legs, two arms, a spine)." if quadruped else
            " Map those joints by hand in the bone mapping (Retarget panel) or load a preset.")
    raise InputError(
        f"Cannot retarget onto '{rig_name}': no bone could be mapped for "
        f"{len(missing)} required joint(s): {', '.join(missing)}.{hint}")


def check_mapping(mapping: BoneMapping, names, parents) -> list:
    """Problems of a (hand-edited) mapping against a rig: unknown bones are errors
    (:class:`InputError`), hierarchy oddities are returned as warnings."""
    tree = BoneTree(names, parents)
    unknown = [f"{j} → '{b}'" for j, b in mapping.mapped.items() if b not in tree.index]
    if mapping.root and mapping.root not in tree.index:
        unknown.append(f"root → '{mapping.root}'")
    if unknown:
        raise InputError(f"The bone mapping names bones the armature does not have: "
                         f"{', '.join(unknown[:6])}{'…' if len(unknown) > 6 else ''}")
    seen, dup = {}, []
    for j, b in mapping.mapped.items():
        if b in seen:
            dup.append(f"'{b}' ({seen[b]}, {j})")
        seen[b] = j
    if dup:
        raise InputError(f"A bone can drive only one joint: {', '.join(dup)}")
    warnings = []
    idx = {j: tree.index[b] for j, b in mapping.mapped.items()}
    for j, i in idx.items():
        anc = _mapped_ancestor_joint(j, idx)
        if anc is not None and not tree.is_ancestor(idx[anc], i):
            warnings.append(f"'{mapping.bones[j]}' ({j}) is not below '{mapping.bones[anc]}' "
                            f"({anc})")
    if (mapping.root and "Hips" in idx
            and not tree.is_ancestor(tree.index[mapping.root], idx["Hips"])):
        warnings.append(f"Root bone '{mapping.root}' is not above the hips bone "
                        f"'{mapping.bones['Hips']}'")
    return warnings


def _weight(j):
    return 2.0 if j in cv.CORE_JOINTS else 1.0


def _mapped_ancestor_joint(j, idx):
    p = cv.PARENTS[cv.INDEX[j]]
    while p >= 0 and cv.JOINTS[p] not in idx:
        p = cv.PARENTS[p]
    return cv.JOINTS[p] if p >= 0 else None


def _consistent(tree, assigned, j, i) -> bool:
    """Bone ``i`` for joint ``j`` keeps the hierarchy: below the mapped ancestor joint,
    above the mapped descendant joints."""
    anc = _mapped_ancestor_joint(j, assigned)
    if anc is not None and not tree.is_ancestor(assigned[anc], i):
        return False
    for k, b in assigned.items():
        if _mapped_ancestor_joint(k, {**assigned, j: i}) == j and not tree.is_ancestor(i, b):
            return False
    return True


def _check_chains(tree, assigned, quality, notes, trusted=()):
    """Drop joints whose bone is not below the bone of their mapped ancestor joint (bones
    of a known convention are kept: generated rigs link controls through constraints)."""
    changed = True
    while changed:
        changed = False
        for j in cv.JOINTS:
            if j not in assigned or j in trusted:
                continue
            anc = _mapped_ancestor_joint(j, assigned)
            if anc is not None and not tree.is_ancestor(assigned[anc], assigned[j]):
                notes.append(f"Ignored '{tree.names[assigned[j]]}' for {j}: it is not below "
                             f"'{tree.names[assigned[anc]]}' ({anc})")
                del assigned[j]
                quality.pop(j, None)
                changed = True


def _left_axis(tree, named_sides):
    """Armature-space direction of the character's left, from bones whose names have a
    side (pairs of same-kind bones), else +X."""
    if tree.heads is None:
        return np.array([1.0, 0.0, 0.0])
    acc = np.zeros(3)
    for base, sides in named_sides.items():
        if "L" in sides and "R" in sides:
            acc += tree.heads[sides["L"]].mean(axis=0) - tree.heads[sides["R"]].mean(axis=0)
    n = np.linalg.norm(acc)
    return acc / n if n > 1e-9 else np.array([1.0, 0.0, 0.0])


def _generic(tree, fixed):
    """Generic name matching plus hierarchy rules; ``fixed`` (joint → bone index) is kept."""
    notes = []
    cands = {}  # (base, side) → [(quality, index)]
    named_sides = {}
    unsided = []
    for i, name in enumerate(tree.names):
        c = classify(name)
        if c is None:
            continue
        base, side, q = c
        if base in cv.SIDED or base == "Leg":
            if side is None:
                unsided.append((base, q, i))
                continue
            named_sides.setdefault(base, {}).setdefault(side, []).append(i)
        cands.setdefault((base, side), []).append((q, i))
    if unsided:
        left = _left_axis(tree, named_sides)
        centre = None
        if tree.heads is not None:
            centre = tree.heads.mean(axis=0)
        for base, q, i in unsided:
            if centre is None:
                continue
            lateral = float((tree.heads[i] - centre) @ left)
            if abs(lateral) < 1e-9:
                continue
            side = "L" if lateral > 0 else "R"
            cands.setdefault((base, side), []).append((q * 0.9, i))
        if tree.heads is not None:
            notes.append("Sides of limbs without L/R in their names come from their position")

    used = set(fixed.values())
    out = dict(fixed)
    quality = {}

    def pick(base, side, under=None, above=None):
        best = None
        for q, i in cands.get((base, side), ()):
            if i in used:
                continue
            if under is not None and not tree.is_ancestor(under, i):
                continue
            if above is not None and not tree.is_ancestor(i, above):
                continue
            key = (-q, tree.depth[i], i)
            if best is None or key < best[0]:
                best = (key, q, i)
        return (best[2], best[1]) if best else (None, 0.0)

    def put(joint, i, q):
        if i is not None and joint not in out:
            out[joint] = i
            quality[joint] = q
            used.add(i)

    # hips: the shallowest 'hips' bone; else the common ancestor of the upper legs
    if "Hips" not in out:
        i, q = pick("Hips", None)
        put("Hips", i, q)
    hips = out.get("Hips")

    # legs (an ambiguous 'Leg' is the lower leg below an upper leg, else the upper leg)
    for side in ("L", "R"):
        j = lambda b: cv.joint(b, side)  # noqa: E731
        if j("UpperLeg") not in out:
            i, q = pick("UpperLeg", side, under=hips)
            if i is None:
                i, q = pick("Leg", side, under=hips)
            put(j("UpperLeg"), i, q)
        up = out.get(j("UpperLeg"))
        if j("LowerLeg") not in out:
            i, q = pick("LowerLeg", side, under=up)
            if i is None and up is not None:
                i, q = pick("Leg", side, under=up)
            put(j("LowerLeg"), i, q)
        low = out.get(j("LowerLeg"))
        if j("Foot") not in out:
            put(j("Foot"), *pick("Foot", side, under=low if low is not None else up))
        if j("Toes") not in out and out.get(j("Foot")) is not None:
            put(j("Toes"), *pick("Toes", side, under=out[j("Foot")]))
    if hips is None and out.get("UpperLeg_L") is not None and out.get("UpperLeg_R") is not None:
        a = tree.lca(out["UpperLeg_L"], out["UpperLeg_R"])
        if a is not None and a not in used:
            put("Hips", a, _Q_TOPO)
            hips = a
            notes.append(f"Hips: '{tree.names[a]}', the common parent of the legs")

    # arms
    for side in ("L", "R"):
        j = lambda b: cv.joint(b, side)  # noqa: E731
        if j("UpperArm") not in out:
            put(j("UpperArm"), *pick("UpperArm", side, under=hips))
        ua = out.get(j("UpperArm"))
        if j("LowerArm") not in out:
            put(j("LowerArm"), *pick("LowerArm", side, under=ua))
        la = out.get(j("LowerArm"))
        if j("Hand") not in out:
            put(j("Hand"), *pick("Hand", side, under=la if la is not None else ua))
        if j("Shoulder") not in out and ua is not None:
            put(j("Shoulder"), *pick("Shoulder", side, under=hips, above=ua))

    # spine chain: chest = common ancestor of the arms; spine and neck on the paths
    arm_l = out.get("Shoulder_L", out.get("UpperArm_L"))
    arm_r = out.get("Shoulder_R", out.get("UpperArm_R"))
    if "Head" not in out:
        put("Head", *pick("Head", None, under=hips))
    head = out.get("Head")
    if "Chest" not in out:
        i, q = None, 0.0
        if arm_l is not None and arm_r is not None:
            a = tree.lca(arm_l, arm_r)
            if a is not None and a not in used and (hips is None or tree.is_ancestor(hips, a)):
                i, q = a, _Q_TOKEN if classify(tree.names[a]) else _Q_TOPO
        if i is None:
            i, q = pick("Chest", None, under=hips)
        put("Chest", i, q)
    chest = out.get("Chest")
    if "Spine" not in out and hips is not None:
        top = chest if chest is not None else (out.get("Neck", head))
        if top is not None:
            path = [b for b in tree.path(hips, top) if b not in used]
            named = [b for b in path
                     if (classify(tree.names[b]) or (None,))[0] in ("Spine", "Chest")]
            pool = named or path
            if pool:
                put("Spine", pool[0], _Q_TOKEN if named else _Q_TOPO)
        if "Spine" not in out and chest is None:
            put("Spine", *pick("Spine", None, under=hips))
    if "Neck" not in out:
        base = chest if chest is not None else out.get("Spine", hips)
        if base is not None and head is not None:
            path = [b for b in tree.path(base, head) if b not in used]
            named = [b for b in path if (classify(tree.names[b]) or (None,))[0] == "Neck"]
            pool = named or path
            if pool:
                put("Neck", pool[0], _Q_TOKEN if named else _Q_TOPO)
        if "Neck" not in out:
            put("Neck", *pick("Neck", None, under=base))
    return {j: i for j, i in out.items() if j not in fixed}, quality, notes


def _find_root(tree, hips, conv, lower):
    if hips is None:
        return None
    cand = list(conv.root) if conv is not None else []
    cand += ["root", "Root", "master", "BoneRoot", "CC_Base_BoneRoot", "RL_BoneRoot", "Armature"]
    for c in cand:
        i = lower.get(c.lower())
        if i is not None and tree.is_ancestor(i, hips):
            return tree.names[i]
    for a in tree.ancestors(hips):
        toks = tokens(tree.names[a])
        if "root" in toks or "master" in toks:
            return tree.names[a]
    return None


# --------------------------------------------------------------------------- topology only


def _main_chain(tree, i):
    """From bone ``i`` down while there is exactly one child (the limb's joints)."""
    chain = [i]
    while len(tree.children[chain[-1]]) == 1:
        chain.append(tree.children[chain[-1]][0])
    return chain


def _twins(tree, parent, heads):
    """Pairs of children of ``parent`` whose subtrees look mirrored (same size and depth,
    heads at the same distance from the parent's head, apart from each other)."""
    kids = tree.children[parent]
    out = []
    for a in range(len(kids)):
        for b in range(a + 1, len(kids)):
            x, y = kids[a], kids[b]
            if tree.subtree_size(x) != tree.subtree_size(y) or tree.subtree_size(x) < 3:
                continue
            da = np.linalg.norm(heads[x] - heads[parent])
            db = np.linalg.norm(heads[y] - heads[parent])
            apart = np.linalg.norm(heads[x] - heads[y])
            scale = max(da, db, 1e-9)
            if abs(da - db) <= 0.05 * scale + 1e-9 and apart > 1e-6:
                out.append((x, y))
    return out


def _topology(tree):
    """Humanoid structure from the hierarchy and rest heads alone."""
    heads = tree.heads
    notes = []
    best = None
    for h in sorted(range(len(tree)), key=lambda i: tree.depth[i]):
        for legs in _twins(tree, h, heads):
            rest = [c for c in tree.children[h] if c not in legs]
            if not rest:
                # legs hang from the hips, the spine may start at a parent
                continue
            upper = max(rest, key=tree.subtree_size)
            # chest: first bone in the upper body with twin children (arms)
            stack, chest = [upper], None
            while stack and chest is None:
                x = stack.pop(0)
                if _twins(tree, x, heads) and len(tree.children[x]) >= 3:
                    chest = x
                stack.extend(tree.children[x])
            if chest is None:
                continue
            best = (h, legs, upper, chest)
            break
        if best:
            break
    if best is None:
        return {}, notes
    h, legs, upper, chest = best
    arms = _twins(tree, chest, heads)[0]
    up = heads[chest] - heads[h]
    leg_dir = np.mean([heads[_main_chain(tree, x)[-1]] for x in legs], axis=0) - heads[h]
    nu, nl = np.linalg.norm(up), np.linalg.norm(leg_dir)
    if nu < 1e-9 or nl < 1e-9 or (up @ leg_dir) / (nu * nl) > -0.5:
        notes.append("The hierarchy has four limbs, but the spine is not opposite the legs: "
                     "this looks like a quadruped, not a biped")
        return {}, notes
    up /= nu
    # forward from the feet: the leg chains end in bones pointing forward (toes)
    feet = [_main_chain(tree, x) for x in legs]
    fwd = np.zeros(3)
    for ch in feet:
        if len(ch) >= 2:
            d = heads[ch[-1]] - heads[ch[-2]]
            fwd += d - (d @ up) * up
    if np.linalg.norm(fwd) > 1e-9:
        left = np.cross(up, fwd / np.linalg.norm(fwd))
    else:
        left = np.array([1.0, 0.0, 0.0])
    out = {"Hips": h}

    def side_of(x):
        return "L" if (heads[x] - heads[h]) @ left > 0 else "R"

    for x in legs:
        s = side_of(x)
        ch = _main_chain(tree, x)
        for base, i in zip(("UpperLeg", "LowerLeg", "Foot", "Toes"), ch):
            out[cv.joint(base, s)] = i
    for x in arms:
        s = side_of(x)
        ch = _main_chain(tree, x)
        names = ("Shoulder", "UpperArm", "LowerArm", "Hand") if len(ch) >= 4 else \
            ("UpperArm", "LowerArm", "Hand")
        for base, i in zip(names, ch[-len(names):] if len(ch) >= len(names) else ch):
            out[cv.joint(base, s)] = i
    out["Chest"] = chest
    path = tree.path(h, chest)
    if path:
        out["Spine"] = path[0]
    neck = [c for c in tree.children[chest] if c not in arms]
    if neck:
        ch = _main_chain(tree, max(neck, key=tree.subtree_size))
        if len(ch) >= 3 and not tree.children[ch[-1]] and _excluded(tree.names[ch[-1]]):
            ch = ch[:-1]  # a head-top / end bone
        if len(ch) >= 2:
            out["Neck"], out["Head"] = ch[0], ch[-1]
        else:
            out["Head"] = ch[0]
    return out, notes
