"""Manifests as they arrive: saved by Excel, with an implausible affine, nested too deeply, with JSON values of
the wrong kind. Each is read, or refused with a message naming the file and what is wrong, on real files."""

import csv
import json

import numpy as np
import pytest

from cytolake.io.manifest import read_manifest

from conftest import edit_manifest, ingest, sections


def rows(path):
    return list(csv.DictReader(open(path, newline="")))


def rewrite(path, header, body, encoding="utf-8"):
    with open(path, "w", newline="", encoding=encoding) as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(body)


def test_a_csv_saved_by_excel_with_a_bom_and_padded_headers_is_read(landing):
    m = landing / "B01" / "manifest.csv"
    want = [(e.section_id, e.image, e.transform) for e in read_manifest(m, landing)]
    rs = rows(m)
    rewrite(m, [f" {h} " for h in rs[0]], [list(r.values()) for r in rs], encoding="utf-8-sig")
    assert m.read_bytes().startswith(b"\xef\xbb\xbf")
    got = read_manifest(m, landing)
    assert [(e.section_id, e.image, e.transform) for e in got] == want and not any(e.error for e in got)


def test_a_missing_column_names_the_offending_header(landing):

    from cytolake.io.manifest import ManifestError

    m = landing / "B01" / "manifest.csv"
    rs = rows(m)
    header = ["Brain ID" if h == "brain_id" else h for h in rs[0]]
    rewrite(m, header, [list(r.values()) for r in rs])
    with pytest.raises(ManifestError) as e:
        read_manifest(m, landing)
    assert "manifest.csv" in str(e.value) and "'brain_id'" in str(e.value) and "'Brain ID'" in str(e.value)


@pytest.mark.usefixtures("with_atlas")
def test_a_singular_or_implausible_affine_is_a_section_error(cfg, spark, landing):
    m = landing / "B01" / "manifest.csv"
    zero = {f"a{r}{c}": 0.0 for r in range(3) for c in range(3)}
    edit_manifest(m, 1, **zero)  # zero linear part: every pixel at one point
    r2 = rows(m)[1]
    edit_manifest(m, 2, a00=float(r2["a00"]) * 1000, a10=float(r2["a10"]) * 1000, a20=float(r2["a20"]) * 1000)  # um, not mm
    ingest(cfg, spark)
    secs = sections(cfg)
    e1, e2 = secs[("B01", 1)]["error"], secs[("B01", 2)]["error"]
    assert secs[("B01", 1)]["status"] == "error" and "singular" in e1 and "spacing_um is 200" in e1
    assert secs[("B01", 2)]["status"] == "error" and "in-plane scale is 2e+05 x 200 um/px" in e2
    assert "spacing_um is 200 um/px" in e2 and "section_0002.tif" in e2
    assert secs[("B01", 3)]["status"] == "ok"


@pytest.mark.usefixtures("with_atlas")
def test_a_deeply_nested_json_manifest_is_that_brains_error(cfg, spark, landing):
    (landing / "B02" / "manifest.csv").unlink()
    (landing / "B02" / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    s = ingest(cfg, spark)
    assert s.brains["B02"]["status"] == "error" and "manifest.json" in s.brains["B02"]["error"]
    assert "nested too deeply" in s.brains["B02"]["error"]
    assert s.brains["B01"]["status"] == "ok" and s.brains["B01"]["n_ok"] == 3


def _json_manifest(landing, brain="B01"):
    m = landing / brain / "manifest.csv"
    out = []
    for r in rows(m):
        out.append({"brain_id": r["brain_id"], "section_id": int(r["section_id"]), "image_path": r["image_path"],
                    "spacing_um": float(r["spacing_um"]),
                    "transform": [float(r[f"a{i // 4}{i % 4}"]) for i in range(16)]})
    m.unlink()
    return landing / brain / "manifest.json", out


def test_json_transform_must_be_16_numbers(landing):
    path, secs = _json_manifest(landing)
    secs[0]["transform"] = "0123456789abcdef"  # 16 characters
    secs[1]["transform"] = secs[1]["transform"] + [5.0]  # 17 numbers
    path.write_text(json.dumps(secs))
    err = {e.section_id: e.error for e in read_manifest(path, landing)}
    assert err[1] and "16 numbers" in err[1] and "str" in err[1] and "manifest.json" in err[1]
    assert err[2] and "16 numbers" in err[2] and "17" in err[2]
    assert err[3] is None


def test_json_section_id_must_be_an_integer(landing):

    from cytolake.io.manifest import ManifestError

    for bad in (1.9, True, "1.9"):
        path, secs = _json_manifest(landing) if not (landing / "B01" / "manifest.json").exists() else (
            landing / "B01" / "manifest.json", json.loads((landing / "B01" / "manifest.json").read_text()))
        secs[0]["section_id"] = bad
        path.write_text(json.dumps(secs))
        with pytest.raises(ManifestError, match="section_id .* is not an integer"):
            read_manifest(path, landing)
    secs[0]["section_id"] = 1
    path.write_text(json.dumps(secs))
    assert np.array_equal([e.section_id for e in read_manifest(path, landing)], [1, 2, 3])
