# SPDX-License-Identifier: GPL-3.0-or-later
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from sparse_motion.motion import bvh as B
from sparse_motion.motion import rotations as R

SMALL = """HIERARCHY
ROOT Hips
{
\tOFFSET 0.0 0.0 0.0
\tCHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
\tJOINT Spine
\t{
\t\tOFFSET 0 10.5 0
\t\tCHANNELS 3 Zrotation Xrotation Yrotation
\t\tEnd Site
\t\t{
\t\t\tOFFSET 0 5 0
\t\t}
\t}
\tJOINT Leg
\t{
\t\tOFFSET -3 -1 0
\t\tCHANNELS 3 Xrotation Yrotation Zrotation
\t\tEnd Site
\t\t{
\t\t\tOFFSET 0 -20 0
\t\t}
\t}
}
MOTION
Frames: 3
Frame Time: 0.0333333
1 2 3 10 20 30 1 2 3 4 5 6
-1.5e-3 .5 5. -0.0 1E2 +2 0.30000000000000004 12345678.25 1e-300 0 0 0
1 1 1 1 1 1 1 1 1 1 1 1
"""


def _bits(a):
    return np.asarray(a, dtype=np.float64).view(np.uint64)


def test_read_small():
    b = B.read(SMALL)
    assert b.names == ["Hips", "Spine", "Leg"]
    assert b.parents.tolist() == [-1, 0, 0]
    assert b.num_frames == 3 and b.num_channels == 12
    assert b.frame_time == 0.0333333
    assert b.fps == pytest.approx(30.0, rel=1e-5)
    np.testing.assert_array_equal(b.joints[1].offset, [0, 10.5, 0])
    np.testing.assert_array_equal(b.joints[1].end_site, [0, 5, 0])
    assert b.joints[0].end_site is None
    assert [s.start for s in b.channel_slices()] == [0, 6, 9]
    assert b.rotation_order(0) == "ZXY" and b.blender_rotation_order(0) == "YXZ"
    assert b.rotation_order(2) == "XYZ" and b.blender_rotation_order(2) == "ZYX"
    assert b.position_channels(0).tolist() == [0, 1, 2]
    assert b.position_channels(1).tolist() == [-1, -1, -1]
    assert b.rotation_channels(0).tolist() == [4, 5, 3]
    row1 = [-1.5e-3, .5, 5., -0.0, 1e2, 2, 0.30000000000000004, 12345678.25, 1e-300, 0, 0, 0]
    np.testing.assert_array_equal(_bits(b.motion[1]), _bits(row1))
    np.testing.assert_array_equal(b.root_translation()[0], [1, 2, 3])
    lt = b.local_translations()
    np.testing.assert_array_equal(lt[:, 0], b.motion[:, :3])
    np.testing.assert_array_equal(lt[:, 1], np.broadcast_to([0, 10.5, 0], (3, 3)))
    eu = b.local_euler(0)
    np.testing.assert_array_equal(eu[0], [20, 30, 10])  # indexed x, y, z


def test_local_rotations_match_channel_order():
    b = B.read(SMALL)
    m = b.local_rotations_matrix()
    q = b.local_quaternions()
    assert m.shape == (3, 3, 3, 3) and q.shape == (3, 3, 4)
    z, x, y = np.deg2rad([10, 20, 30])
    ref = R.euler_to_matrix([0, 0, z]) @ R.euler_to_matrix([x, 0, 0]) @ R.euler_to_matrix(
        [0, y, 0])
    np.testing.assert_allclose(m[0, 0], ref, atol=1e-12)
    np.testing.assert_allclose(R.quat_to_matrix(q), m, atol=1e-12)
    # Leg: "Xrotation Yrotation Zrotation" -> Rx @ Ry @ Rz
    x, y, z = np.deg2rad([4, 5, 6])
    ref = R.euler_to_matrix([x, 0, 0]) @ R.euler_to_matrix([0, y, 0]) @ R.euler_to_matrix(
        [0, 0, z])
    np.testing.assert_allclose(m[0, 2], ref, atol=1e-12)


def test_input_kinds(tmp_path):
    p = tmp_path / "a.bvh"
    p.write_text(SMALL)
    ref = B.read(SMALL)
    for src in (p, str(p), SMALL.encode(), io.BytesIO(SMALL.encode()), io.StringIO(SMALL),
                bytearray(SMALL.encode())):
        got = B.read(src)
        np.testing.assert_array_equal(_bits(got.motion), _bits(ref.motion))
    np.testing.assert_array_equal(B.loads(SMALL.encode()).motion, ref.motion)


@pytest.mark.parametrize("transform", [
    lambda s: s.replace("\n", "\r\n"),
    lambda s: s.replace("\n", "\r"),
    lambda s: s.replace("\t", "    "),
    lambda s: s.replace("\n", "  \t\n"),
    lambda s: "\ufeff" + s,
    lambda s: s.replace("MOTION", "\n\nMOTION").replace("\n1 1 1 1", "\n\n  \n1 1 1 1", 1) + "\n\n",
    lambda s: s.replace("Hips\n{", "Hips {").replace("Spine\n\t{", "Spine{"),
    lambda s: s.replace("End Site", "End Site tip").replace("HIERARCHY", "hierarchy"),
    lambda s: s.replace("Frames: 3", "Frames:3").replace("Frame Time: ", "Frame Time:\t"),
    lambda s: s.replace("Xposition Yposition", "XPOSITION yposition"),
    lambda s: s.rstrip("\n"),
])
def test_format_variants(transform):
    ref = B.read(SMALL)
    got = B.read(transform(SMALL))
    assert got.names == ref.names
    np.testing.assert_array_equal(_bits(got.motion), _bits(ref.motion))
    np.testing.assert_array_equal(got.offsets, ref.offsets)


def test_multiple_roots_zero_channels_and_positions_on_children():
    text = """HIERARCHY
ROOT A
{
  OFFSET 1 2 3
  CHANNELS 0
  JOINT A1
  {
    OFFSET 0 1 0
    CHANNELS 4 Yposition Xrotation Zrotation Yrotation
  }
}
ROOT B
{
  OFFSET 5 5 5
  CHANNELS 3 Zposition Yposition Xposition
}
MOTION
Frames: 2
Frame Time: 0.01
7 10 20 30 1 2 3
8 0 0 0 4 5 6
"""
    b = B.read(text)
    assert b.parents.tolist() == [-1, 0, -1]
    assert b.rotation_order(1) == "XZY"
    lt = b.local_translations()
    np.testing.assert_array_equal(lt[:, 0], [[1, 2, 3]] * 2)  # no channels -> offset
    np.testing.assert_array_equal(lt[:, 1], [[0, 7, 0], [0, 8, 0]])  # missing axes are 0
    np.testing.assert_array_equal(lt[:, 2], [[3, 2, 1], [6, 5, 4]])
    np.testing.assert_array_equal(b.root_translation(), [[1, 2, 3]] * 2)
    again = B.read(B.dumps(b))
    assert again.parents.tolist() == [-1, 0, -1]
    np.testing.assert_array_equal(again.motion, b.motion)


def test_no_frames_and_no_channels():
    text = "HIERARCHY\nROOT a\n{\nOFFSET 0 0 0\nCHANNELS 0\n}\nMOTION\nFrames: 0\nFrame Time: 1\n"
    b = B.read(text)
    assert b.motion.shape == (0, 0)
    text2 = text.replace("Frames: 0", "Frames: 4")
    assert B.read(text2).motion.shape == (4, 0)
    assert B.read(B.dumps(B.read(text2))).motion.shape == (4, 0)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("mutate, message", [
    (lambda s: "", "empty file"),
    (lambda s: "   \n\t\n", "empty file"),
    (lambda s: s.replace("HIERARCHY", "HIERARCHX"), "line 1: expected 'HIERARCHY'"),
    (lambda s: s.replace("\t{\n\t\tOFFSET 0 10.5", "\t\tOFFSET 0 10.5"),
     "line 7: expected '{' after JOINT Spine, found 'OFFSET'"),
    (lambda s: s.replace("OFFSET 0 10.5 0", "OFFSET 0 x 0"), "line 8: expected OFFSET Y"),
    (lambda s: s.replace("OFFSET 0 10.5 0", "OFFSET 0 nan 0"), "line 8: non-finite"),
    (lambda s: s.replace("3 Zrotation Xrotation Yrotation", "3 Zrotation Xrotation Wrotation"),
     "line 9: expected a channel name"),
    (lambda s: s.replace("3 Zrotation Xrotation Yrotation", "3 Zrotation Xrotation Zrotation"),
     "repeated"),
    (lambda s: s.replace("Frames: 3", "Frames: 4"), "'Frames: 4' declared but only 3"),
    (lambda s: s.replace("Frames: 3", "Frames: 2"), "line 30: more frame rows"),
    (lambda s: s.replace("Frames: 3", "Frames: -3"), "line 26: expected a non-negative"),
    (lambda s: s.replace("Frames: 3", "Frame: 3"), "line 26: expected 'Frames: <count>'"),
    (lambda s: s.replace("Frame Time: 0.0333333", "Frame Time: abc"), "line 27: expected a num"),
    (lambda s: s.replace("Frame Time: 0.0333333", "Frame Time: 0"), "line 27: frame time"),
    (lambda s: s.replace("1 2 3 4 5 6\n", "1 2 3 4 5\n"),
     "line 28: expected 12 values in frame 1, found 11"),
    (lambda s: s.replace("1 2 3 4 5 6\n", "1 2 3 4 5\n").replace("0 0 0\n", "0 0 0 0\n"),
     "line 28: expected 12 values in frame 1, found 11"),
    (lambda s: s.replace(" 12345678.25 ", " 1234x678.25 "), "line 29: expected a number, found "
     "'1234x678.25' (value 8 of frame 2)"),
    (lambda s: s.replace(" 12345678.25 ", " nan "), "line 29: non-finite value 'nan'"),
    (lambda s: s.replace(" 12345678.25 ", " -inf "), "line 29: non-finite value '-inf'"),
    (lambda s: s.replace(" 12345678.25 ", " 1e999 "), "line 29: non-finite value '1e999'"),
    (lambda s: s.replace(" 12345678.25 ", " 1.2.3 "), "line 29: expected a number"),
    (lambda s: s.replace(" 12345678.25 ", " 1_000 "), "line 29: expected a number"),
    (lambda s: s.replace(" 12345678.25 ", " - "), "line 29: expected a number"),
    (lambda s: s.replace(" 12345678.25 ", " 1e "), "line 29: expected a number"),
    (lambda s: s.replace(" 12345678.25 ", " 5-3 "), "line 29: expected a number"),
    (lambda s: s[:s.index("JOINT Leg")], "line 14: expected 'JOINT', 'End Site' or '}' in Hips, found end of file"),
    (lambda s: s[:s.index("MOTION")], "expected 'MOTION'"),
    (lambda s: s[:s.index("Frames")], "expected 'Frames: <count>'"),
    (lambda s: s.replace("JOINT Leg", "JOINT Spine"), "line 15: duplicate joint name 'Spine'"),
    (lambda s: s.replace("JOINT Leg", "JOINT"), "line 15: expected a joint name after JOINT"),
    (lambda s: s.replace("JOINT Leg", "BONE Leg"), "line 15: expected 'JOINT', 'End Site' or '}'"),
    (lambda s: s.replace("CHANNELS 3 Zrotation", "CHANNELS 9 Zrotation"), "at most 6"),
])
def test_errors(mutate, message):
    with pytest.raises(B.BvhError) as exc:
        B.read(mutate(SMALL))
    assert message in str(exc.value)
    assert isinstance(exc.value, ValueError)


def test_bulk_error_line_numbers_in_large_block():
    b = _random_bvh(np.random.default_rng(0), frames=3000)
    text = B.dumps(b, precision=4)
    lines = text.split("\n")
    first = lines.index("MOTION") + 3  # 0-based index of the first frame row
    for row, bad in ((1234, "abc"), (2999, "nan")):
        mutated = list(lines)
        vals = mutated[first + row].split()
        vals[5] = bad
        mutated[first + row] = " ".join(vals)
        with pytest.raises(B.BvhError, match=f"line {first + row + 1}: .*value 6 of frame "
                                             f"{row + 1}"):
            B.read("\n".join(mutated))
    mutated = list(lines)
    mutated[first + 100] += " 1.5"
    mutated[first + 200] = " ".join(mutated[first + 200].split()[:-1])
    with pytest.raises(B.BvhError, match=f"line {first + 101}: expected {b.num_channels} values"):
        B.read("\n".join(mutated))


# --------------------------------------------------------------------------- round trips


def _random_bvh(rng, frames=5, joints=None):
    J = joints or int(rng.integers(1, 8))
    js = []
    path = []  # current root-to-leaf path, so that the order stays depth-first
    for j in range(J):
        if j == 0:
            parent = -1
        else:
            k = int(rng.integers(0, len(path) + 1))
            parent = path[k - 1] if k > 0 else -1
            path = path[:k] if k > 0 else []
        path = path + [j]
        n = int(rng.integers(0, 7))
        chans = list(rng.permutation(B.CHANNEL_NAMES)[:n])
        es = rng.normal(size=3) if rng.random() < 0.5 else None
        js.append(B.BvhJoint(f"j{j}", parent, rng.normal(size=3) * 10, chans, es))
    C = sum(len(j.channels) for j in js)
    return B.Bvh(js, 1 / 30, rng.uniform(-180, 180, size=(frames, C)))


def _assert_same(a, b):
    assert a.names == b.names
    assert a.parents.tolist() == b.parents.tolist()
    assert [j.channels for j in a.joints] == [j.channels for j in b.joints]
    np.testing.assert_array_equal(_bits(a.offsets), _bits(b.offsets))
    np.testing.assert_array_equal(_bits(np.nan_to_num(a.end_sites, nan=7.0)),
                                  _bits(np.nan_to_num(b.end_sites, nan=7.0)))
    assert _bits(a.frame_time) == _bits(b.frame_time)
    assert a.motion.shape == b.motion.shape
    np.testing.assert_array_equal(_bits(a.motion), _bits(b.motion))


finite = st.floats(allow_nan=False, allow_infinity=False)
nice = st.one_of(
    finite,
    st.integers(-10 ** 9, 10 ** 9).map(lambda i: i / 10 ** 6),
    st.decimals(-10 ** 6, 10 ** 6, places=8, allow_nan=False).map(float),
    st.floats(-1e-3, 1e-3),
)


@st.composite
def bvh_objects(draw):
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    b = _random_bvh(rng, frames=draw(st.integers(0, 4)))
    vals = draw(st.lists(nice, min_size=b.motion.size, max_size=b.motion.size))
    b.motion = np.array(vals, dtype=np.float64).reshape(b.motion.shape)
    for j in b.joints:
        j.offset = np.array(draw(st.lists(finite, min_size=3, max_size=3)))
    b.frame_time = draw(st.floats(1e-300, 1e300))
    name = draw(st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF,
                                      blacklist_characters="{}"), min_size=1, max_size=8))
    b.joints[0].name = name + " x" if draw(st.booleans()) else name
    assume(len(set(b.names)) == len(b.names))
    return b


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bvh_objects())
def test_write_read_exact(b):
    text = B.dumps(b)
    _assert_same(B.read(text), b)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bvh_objects(), st.integers(0, 9))
def test_write_with_precision(b, p):
    got = B.read(B.dumps(b, precision=p))
    with np.errstate(over="ignore", invalid="ignore"):
        expect = np.where(np.abs(b.motion) < 2.0 ** 52, np.round(b.motion, p), b.motion) + 0.0
    np.testing.assert_array_equal(_bits(got.motion), _bits(expect))
    np.testing.assert_array_equal(_bits(got.offsets), _bits(b.offsets))


def test_write_to_files(tmp_path):
    b = _random_bvh(np.random.default_rng(1), frames=50)
    B.write(b, tmp_path / "x.bvh")
    _assert_same(B.read(tmp_path / "x.bvh"), b)
    bio = io.BytesIO()
    B.write(b, bio)
    _assert_same(B.read(bio.getvalue()), b)
    sio = io.StringIO()
    B.write(b, sio)
    _assert_same(B.read(sio.getvalue()), b)


def test_write_rejects_bad_objects():
    b = _random_bvh(np.random.default_rng(2), frames=3, joints=3)
    bad = b.copy()
    bad.motion[0, 0] = np.nan if bad.motion.size else 0
    if bad.motion.size:
        with pytest.raises(B.BvhError, match="non-finite"):
            B.dumps(bad)
    bad = b.copy()
    bad.joints[1].name = "two  spaces"
    with pytest.raises(B.BvhError, match="invalid joint name"):
        B.dumps(bad)
    bad = b.copy()
    bad.joints[1].name = bad.joints[0].name
    with pytest.raises(B.BvhError, match="duplicate"):
        B.dumps(bad)
    with pytest.raises(B.BvhError):
        B.BvhJoint("a", -1, [0, 0, 0], ["Wrotation"])


def test_writer_reorders_non_depth_first_joints():
    P = ["Xrotation", "Yrotation", "Zrotation"]
    js = [B.BvhJoint("r", -1, [0, 0, 0], P), B.BvhJoint("a", 0, [1, 0, 0], P),
          B.BvhJoint("b", 0, [2, 0, 0], P), B.BvhJoint("a1", 1, [3, 0, 0], P)]
    m = np.arange(24, dtype=float).reshape(2, 12)
    got = B.read(B.dumps(B.Bvh(js, 0.1, m)))
    assert got.names == ["r", "a", "a1", "b"]
    np.testing.assert_array_equal(got.motion[:, 6:9], m[:, 9:12])  # a1's columns moved
    np.testing.assert_array_equal(got.motion[:, 9:12], m[:, 6:9])


def test_bulk_parser_matches_float_exactly():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(size=3000) * 10.0 ** rng.integers(-30, 30, 3000),
                        rng.uniform(-1000, 1000, 3000), rng.random(3000)])
    for fmt in ("%r", "%.6f", "%.3e", "%.17g", "%.12f", "%+.1f", "%.0f"):
        toks = [(fmt % v).encode() if fmt != "%r" else repr(float(v)).encode() for v in x]
        vals, _ = B._parse_numbers(b" ".join(toks))
        ref = np.array([float(t) for t in toks])
        np.testing.assert_array_equal(_bits(vals), _bits(ref), err_msg=fmt)


# --------------------------------------------------------------------------- fuzzing


def _read_or_bvherror(data):
    try:
        b = B.read(data)
    except B.BvhError:
        return None
    assert b.motion.shape == (b.num_frames, b.num_channels)
    assert np.all(np.isfinite(b.motion))
    return b


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data):
    _read_or_bvherror(data)
    _read_or_bvherror(b"HIERARCHY\n" + data)


SMALL_B = SMALL.encode()


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_fuzz_mutated_valid_file(data):
    buf = bytearray(SMALL_B)
    for _ in range(data.draw(st.integers(1, 3))):
        kind = data.draw(st.sampled_from(["delete", "duplicate", "insert", "swap", "replace"]))
        n = len(buf)
        i = data.draw(st.integers(0, max(n - 1, 0)))
        j = data.draw(st.integers(i, min(n, i + 40)))
        if kind == "delete":
            del buf[i:j]
        elif kind == "duplicate":
            buf[i:i] = buf[i:j]
        elif kind == "insert":
            buf[i:i] = data.draw(st.sampled_from(
                [b"{", b"}", b" ", b"\n", b"-", b".", b"e", b"1e400", b"nan", b"JOINT x",
                 b"End Site", b"\x00", b"\xff\xfe", b"CHANNELS", b"OFFSET 1 2 3", b"MOTION",
                 b"\r", b"+", b"9" * 30])) if data.draw(st.booleans()) else data.draw(
                st.binary(max_size=8))
        elif kind == "swap":
            toks = bytes(buf).split(b" ")
            if len(toks) > 2:
                a = data.draw(st.integers(0, len(toks) - 1))
                c = data.draw(st.integers(0, len(toks) - 1))
                toks[a], toks[c] = toks[c], toks[a]
                buf = bytearray(b" ".join(toks))
        else:
            buf[i:j] = data.draw(st.binary(max_size=6))
    _read_or_bvherror(bytes(buf))
    _read_or_bvherror(bytes(buf).decode("latin-1"))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(
    ["1", "-1.5", ".5", "5.", "1e5", "-2E-3", "+7", "0.30000000000000004", "x", "-", "1e",
     "..", "1.2.3", "nan", "inf", "1e999", "\t", "\n", "  ", "123456789012345678901234"]),
    max_size=30))
def test_fuzz_motion_tokens(tokens):
    head = SMALL[:SMALL.index("Frames")] + "Frames: 1\nFrame Time: 0.5\n"
    b = _read_or_bvherror(head + " ".join(tokens) + "\n")
    if b is not None:
        assert b.motion.shape == (1, 12)


@pytest.mark.parametrize("fmt", ["%.6f", "%g", "%r", "%.4e"])
def test_chunked_parsing_matches(monkeypatch, fmt):
    b = _random_bvh(np.random.default_rng(7), frames=200, joints=4)
    b.motion[:, ::3] *= 1e-7
    b.motion[::7, 1::4] = 0.0
    rows = [" ".join((fmt % v) if fmt != "%r" else repr(float(v)) for v in r) for r in b.motion]
    head = B.dumps(B.Bvh(b.joints, b.frame_time, np.zeros((0, b.num_channels))))
    text = head.replace("Frames: 0", f"Frames: {len(rows)}") + "\n".join(rows) + "\n"
    expect = np.array([[float(v) for v in r.split()] for r in rows])
    whole = B.read(text)
    monkeypatch.setattr(B, "_CHUNK", 97)
    chunked = B.read(text)
    np.testing.assert_array_equal(_bits(whole.motion), _bits(expect))
    np.testing.assert_array_equal(_bits(chunked.motion), _bits(expect))
    bad = text.replace("\n" + rows[150], "\n" + rows[150] + " 1")
    with pytest.raises(B.BvhError, match="expected .* values in frame 151"):
        B.read(bad)


def test_deep_hierarchy_round_trip():
    n = 3000  # deeper than Python's recursion limit
    js = [B.BvhJoint(f"j{i}", i - 1, [0, 1, 0], ["Zrotation", "Xrotation", "Yrotation"])
          for i in range(n)]
    js[-1].end_site = np.array([0.0, 1.0, 0.0])
    b = B.Bvh(js, 0.04, np.random.default_rng(0).uniform(-5, 5, (2, 3 * n)))
    _assert_same(B.read(B.dumps(b)), b)
