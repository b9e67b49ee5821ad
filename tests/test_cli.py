"""The ``cnnbench`` command: the zoo table and JSON, and an unknown name's error."""

from __future__ import annotations

import json

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
