"""The ``cnnbench`` command: the zoo table and JSON, pretraining into the cache, unknown names, the suites and their
JSON Schema."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from cnnbench.cli import main


def test_zoo_json_lists_models_with_reference_params_and_stages(capsys) -> None:
    assert main(["zoo", "--json", "lenet5", "resnet18"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["lenet5"]["params"] == 61_706 and rows["resnet18"]["params"] == 11_689_512
    assert rows["resnet18"]["stages"] == ["stem", "layer1", "layer2", "layer3", "layer4"]
    # LeNet-5 is ~0.42 M multiply-accumulates per image (SPEC §2): XLA counts about 2 FLOPs per MAC
    assert 0.0007 < rows["lenet5"]["bench_gflops"] < 0.0012


def test_zoo_table_and_unknown_name(capsys) -> None:
    assert main(["zoo", "lenet5"]) == 0
    out = capsys.readouterr().out
    assert "lenet5" in out and "61,706" in out and "c1, c3, c5" in out
    assert main(["zoo", "resnet19"]) == 2
    assert "unknown arch 'resnet19'; known: lenet5, alexnet, vgg11" in capsys.readouterr().err


def test_pretrain_builds_then_hits_the_cache_pytest_uses(tmp_path, tiny_suite_text: str, capsys) -> None:
    suite = tmp_path / "tiny.toml"
    suite.write_text(tiny_suite_text)
    args = ["pretrain", "--suite", str(suite), "--cache", str(tmp_path / "cache"), "--json"]
    assert main(args) == 0
    (first,) = json.loads(capsys.readouterr().out)
    assert first["arch"] == "lenet5" and not first["cache_hit"] and first["width"] == 1.0
    assert first["source_accuracy"] > 3 / 52  # 52 source classes: well above chance even after 60 steps
    assert main(args) == 0
    captured = capsys.readouterr()
    (second,) = json.loads(captured.out)
    assert second["cache_hit"] and second["source_accuracy"] == first["source_accuracy"]
    assert "pretrained lenet5: cache hit" in captured.err
    assert main(["pretrain", "--suite", str(suite), "resnet19"]) == 2
    assert "unknown arch 'resnet19'" in capsys.readouterr().err


def test_similarity_json_rows_per_target_and_arch(tmp_path, tiny_suite_text: str, shared_cache, capsys) -> None:
    suite = tmp_path / "tiny.toml"
    suite.write_text(tiny_suite_text.replace('target = "digits"', 'target = "font-digits"').replace("= 40", "= 100"))
    assert main(["similarity", "--suite", str(suite), "--cache", str(shared_cache), "--json"]) == 0
    rows = {r["quadrant"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["q3"]["target_name"] == "textures" and rows["q4"]["target_name"] == "font-digits"
    assert rows["q4"]["similar"] and not rows["q3"]["similar"] and rows["q4"]["arch"] == "lenet5"
    assert (
        0 <= rows["q4"]["target"]["random"] <= 1 and rows["q4"]["source"]["pretrained"] > rows["q4"]["source"]["random"]
    )


def test_similarity_of_a_broken_user_dataset_is_an_error_naming_it(tmp_path, tiny_suite_text: str, capsys) -> None:
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    suite = tmp_path / "mine.toml"
    suite.write_text(tiny_suite_text.replace('target = "textures"', 'target = "broken.npz"'))
    assert main(["similarity", "--suite", str(suite), "--cache", str(tmp_path / "cache")]) == 2
    assert "cnnbench similarity: " in (err := capsys.readouterr().err) and "broken.npz is not a valid .npz" in err


def test_suites_lists_the_builtins_and_prints_the_suite_schema(capsys) -> None:
    assert main(["suites"]) == 0
    listing = capsys.readouterr().out
    assert "smoke" in listing and "96 scenarios" in listing and "1314 scenarios" in listing
    assert "hardware" in listing and "156 bench points" in listing
    assert main(["suites", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema)
    smoke = tomllib.loads((Path(__file__).parents[1] / "suites" / "smoke.toml").read_text())
    jsonschema.validate(smoke, schema)
    assert "resnet18" in schema["$defs"]["transfer"]["properties"]["archs"]["items"]["enum"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**smoke, "archs": ["resnet19"]}, schema)
