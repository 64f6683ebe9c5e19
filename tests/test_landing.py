"""`cytolake landing check` and `landing init` on real landing folders (real BigTIFFs, real manifests)."""

import csv
import shutil

import numpy as np
import pytest

from cytolake.cli import main
from cytolake.io.images import write_pyramid_tiff
from cytolake.lake import Lake

from conftest import edit_manifest, ingest, write_config


def _copy_brain(landing, src: str, dst: str) -> None:
    shutil.copytree(landing / src, landing / dst)
    m = landing / dst / "manifest.csv"
    m.write_text(m.read_text().replace(f"\n{src},", f"\n{dst},"))


def _check(cfg, tmp_path, capsys, *brains) -> tuple[int, list[str]]:
    code = main(["--config", str(write_config(cfg, tmp_path / "cfg.yaml")), "landing", "check", *brains])
    return code, [line for line in capsys.readouterr().out.splitlines() if line]


def test_check_finds_every_bad_input_ingest_rejects_and_touches_no_table(cfg, spark, landing, tmp_path, capsys,
                                                                         atlas_lake):
    for b in ("B03", "B04", "B05"):
        _copy_brain(landing, "B01", b)
    b1, b2 = landing / "B01", landing / "B02"
    img = b1 / "images" / "section_0001.tif"
    img.write_bytes(img.read_bytes()[:2000])  # truncated
    edit_manifest(b1 / "manifest.csv", 2, spacing_um=1.0)  # spacing disagrees with the header
    edit_manifest(b1 / "manifest.csv", 3, a13=900.0)  # outside the reference volume
    write_pyramid_tiff(b2 / "images" / "section_0001.tif", np.zeros((300, 400), np.uint16), 200.0, 128, 128)
    edit_manifest(b2 / "manifest.csv", 2, image_path="images/nope.tif")  # missing file
    edit_manifest(b2 / "manifest.csv", 3, image_path="../../../../etc/passwd")  # escapes the landing folder
    m3 = landing / "B03" / "manifest.csv"
    lines = m3.read_text().splitlines()
    m3.write_text("\n".join(lines[:2] + ['B03,2,"images/section_0002.tif,200'] + lines[3:]) + "\n")  # malformed
    m4 = landing / "B04" / "manifest.csv"
    edit_manifest(m4, 1, annotation_path="images/section_0002.tif")  # a "label image" of another aspect...
    write_pyramid_tiff(landing / "B04" / "images" / "section_0002.tif", np.zeros((40, 400), np.uint8), 200.0, 128, 128)
    edit_manifest(m4, 2, a00="")  # an affine left unfilled
    edit_manifest(m4, 3, spacing_um=-5)  # not a spacing
    rows = list(csv.DictReader(open(landing / "B05" / "manifest.csv", newline="")))
    for r in rows:
        r["warp_path"] = "warps/missing.nii.gz"
    with open(landing / "B05" / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (landing / "B06" / "images").mkdir(parents=True)  # images delivered without a manifest
    shutil.copy(landing / "B02" / "images" / "section_0002.tif", landing / "B06" / "images")

    code, out = _check(cfg, tmp_path, capsys)
    assert code == 3
    assert not cfg.paths.lake.exists()  # no table touched, none created
    expected = [  # (file, line, words of the message)
        ("B01/manifest.csv", 2, "truncated"), ("B01/manifest.csv", 3, "spacing mismatch"),
        ("B01/manifest.csv", 4, "outside the reference volume"), ("B02/manifest.csv", 2, "uint16"),
        ("B02/manifest.csv", 3, "image file not found"), ("B02/manifest.csv", 4, "escapes the landing folder"),
        ("B03/manifest.csv", 3, "malformed"), ("B04/manifest.csv", 2, "annotation aspect"),
        ("B04/manifest.csv", 3, "affine not filled in"), ("B04/manifest.csv", 4, "must be a positive number"),
        ("B05/manifest.csv", 2, "warp file not found"), ("B06", None, "no manifest"),
    ]
    assert len(out) == len(expected), "\n".join(out)
    for (file, line, words), got in zip(expected, out):
        where = f"{landing / file}:{line}: " if line else f"{landing / file}: "
        assert got.startswith(where) and words in got, (where, words, got)

    # ingest rejects exactly these: every section check flagged is an error section, the malformed manifest a brain error
    shutil.copytree(atlas_lake, cfg.paths.lake)  # the atlas registered, as a first ingest would
    s = ingest(cfg, spark)
    errors = {(r["brain_id"], r["section_id"]) for r in Lake(cfg.paths.lake).read("sections").to_pylist()
              if r["status"] == "error"}
    assert errors == {(b, i) for b in ("B01", "B02", "B04", "B05") for i in (1, 2, 3)}
    assert s.brains["B03"]["status"] == "error" and "B06" not in s.brains


def test_check_of_a_good_landing_and_of_named_brains(cfg, landing, tmp_path, capsys):
    assert _check(cfg, tmp_path, capsys) == (0, [])
    edit_manifest(landing / "B02" / "manifest.csv", 1, spacing_um=3.0)
    assert _check(cfg, tmp_path, capsys, "B01") == (0, [])
    code, out = _check(cfg, tmp_path, capsys, "B02", "B09")
    assert code == 3 and len(out) == 2 and "B09: no such brain" in out[0] and "B02/manifest.csv:2: section 1:" in out[1]


@pytest.mark.usefixtures("with_atlas")
def test_init_then_fill_the_transforms_then_check_then_ingest(cfg, spark, landing, tmp_path, capsys):
    new = landing / "B07"
    shutil.copytree(landing / "B01" / "images", new / "images")
    shutil.copytree(landing / "B01" / "annotations", new / "annotations")  # label images: not sections
    conf = str(write_config(cfg, tmp_path / "cfg.yaml"))
    capsys.readouterr()
    assert main(["--config", conf, "landing", "init", str(new)]) == 0
    # the hint at the end is a command that runs as printed: the config named, the folder given
    assert capsys.readouterr().out.splitlines()[-1].endswith(f"then run: cytolake --config {conf} landing check {new}")
    assert main(["--config", conf, "landing", "init", str(new)]) == 2  # never overwrites silently
    rows = list(csv.DictReader(open(new / "manifest.csv", newline="")))
    assert [(r["brain_id"], r["section_id"], r["image_path"], float(r["spacing_um"])) for r in rows] == [
        ("B07", str(i), f"images/section_{i:04d}.tif", 200.0) for i in (1, 2, 3)]
    assert all(r["a00"] == "" and r["warp_path"] == "" for r in rows)
    # each image paired with the label image beside it, exactly as the delivered B01 manifest pairs them
    src = {r["image_path"]: r for r in csv.DictReader(open(landing / "B01" / "manifest.csv", newline=""))}
    assert [r["annotation_path"] for r in rows] == [src[r["image_path"]]["annotation_path"] for r in rows]
    assert any(r["annotation_path"] for r in rows) and not all(r["annotation_path"] for r in rows)
    capsys.readouterr()
    code, out = _check(cfg, tmp_path, capsys, "B07")
    assert code == 3 and len(out) == 3
    assert all(line.endswith("affine not filled in (empty: all 16 (a00..a33))") for line in out), out

    for r in rows:  # what the user does: fill the 16 affine cells
        r.update({f"a{i}{j}": src[r["image_path"]][f"a{i}{j}"] for i in range(4) for j in range(4)})
    with open(new / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert _check(cfg, tmp_path, capsys, "B07") == (0, [])
    s = ingest(cfg, spark)
    assert s.brains["B07"] == {"status": "ok", "error": None, "n_ok": 3, "n_error": 0, "changed": True}


def test_init_refuses_a_folder_without_images_or_with_a_bad_name(tmp_path):
    from cytolake.ingest.landing import init_manifest

    (tmp_path / "B08").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        init_manifest(tmp_path / "B08")
    (tmp_path / "bad name").mkdir()
    with pytest.raises(ValueError, match="brain id"):
        init_manifest(tmp_path / "bad name")


def test_check_of_a_brain_folder_outside_the_landing_by_its_path(cfg, landing, tmp_path, capsys):
    outside = tmp_path / "delivery" / "B11"  # a brain prepared elsewhere before it is delivered
    _copy_brain(landing, "B01", "B11")
    outside.parent.mkdir()
    shutil.move(landing / "B11", outside)
    assert _check(cfg, tmp_path, capsys, str(outside)) == (0, [])
    edit_manifest(outside / "manifest.csv", 2, a03="", a13="")
    edit_manifest(outside / "manifest.csv", 3, image_path="../../landing/B01/images/section_0003.tif")
    code, out = _check(cfg, tmp_path, capsys, str(outside), "B01", str(tmp_path / "nowhere"))
    assert code == 3 and len(out) == 3, out
    assert out[0] == f"{tmp_path / 'nowhere'}: no such brain folder"
    assert out[1] == f"{outside}/manifest.csv:3: row 2 (line 3): affine not filled in (empty: a03, a13)"
    assert out[2].startswith(f"{outside}/manifest.csv:4: ") and "escapes the landing folder" in out[2]
