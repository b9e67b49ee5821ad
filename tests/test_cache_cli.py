"""``cnnbench cache``: what ``info`` finds in a cache directory (bases from their meta.json, unfinished builds,
compiled programs per backend, similarity entries, sizes to the byte), what ``clear`` removes and frees, the
default location, that neither loads JAX; ``key``, which changes exactly when a base the suite caches would; and the
command line's own polish: version, ``python -m cnnbench``, plain help, list options, progress on stderr."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cnnbench import __version__, cli
from cnnbench.cli import main
from cnnbench.engine import integrity
from cnnbench.fileio import readable_size

META = {
    "key": {"model": {"arch": "lenet5", "img_size": 32, "in_chans": 1, "width": 1.0}, "code": "c0de",
            "source": {}, "pretrain": {"train": {"steps": 800}, "seed": 0, "eval_size": 2000},
            "cnnbench": "0.1.0", "backend": "cpu", "format": 2},
    "source_accuracy": 0.453, "seconds": 12.0,
}  # fmt: skip


def put(path: Path, size: int) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return size


@pytest.fixture
def cache(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """A cache as the writers lay it out, with the bytes of each part: a complete lenet5 base (its SHA256SUMS too),
    a resnet18 entry
    without meta.json, an unfinished build and its lock; three cpu programs (one with an access-time file) and one
    gpu program; two similarity entries; and a file cnnbench did not write."""
    root = tmp_path / "cache"
    meta = json.dumps(META)
    sizes = {"pretrained": 0, "xla": 0, "similarity": 0, "other": 0}
    base = root / "pretrained" / "lenet5-0123456789abcdef"
    (base / "state").mkdir(parents=True)
    (base / "meta.json").write_text(meta)
    put(base / "state" / "checkpoint", 1000)
    integrity.write_sums(base)
    sizes["lenet5"] = sizes["pretrained"] = 1000 + len(meta) + (base / "SHA256SUMS").stat().st_size
    sizes["pretrained"] += put(root / "pretrained" / "resnet18-fedcba9876543210" / "state" / "x", 300)
    sizes["pretrained"] += put(root / "pretrained" / "lenet5-aaaaaaaaaaaaaaaa.tmp" / "state" / "x", 500)
    sizes["pretrained"] += put(root / "pretrained" / "lenet5-aaaaaaaaaaaaaaaa.lock", 0)
    cpu = root / "xla" / "cpu"
    programs = (("jit_a-cache", 2000), ("jit_a-atime", 8), ("jit_b-cache", 3000), ("jit_c-cache", 100))
    sizes["cpu"] = sum(put(cpu / name, n) for name, n in programs)
    sizes["xla"] = sizes["cpu"] + put(root / "xla" / "gpu" / "jit_a-cache", 700)
    sizes["similarity"] = put(root / "similarity" / "a.json", 40) + put(root / "similarity" / "b.json", 60)
    sizes["other"] = put(root / "notes.txt", 7)
    return root, sizes


def test_info_accounts_for_every_part_to_the_byte(cache, capsys) -> None:
    root, sizes = cache
    assert main(["cache", "info", "--cache", str(root), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["path"] == str(root) and info["exists"]
    assert info["total_bytes"] == sizes["pretrained"] + sizes["xla"] + sizes["similarity"] + sizes["other"]
    assert info["pretrained"]["bytes"] == sizes["pretrained"] and info["other_bytes"] == 7
    lenet, resnet = info["pretrained"]["bases"]
    assert lenet == {"name": "lenet5-0123456789abcdef", "arch": "lenet5", "bytes": sizes["lenet5"],
                     "source_accuracy": 0.453, "seconds": 12.0, "steps": 800, "img_size": 32, "in_chans": 1,
                     "width": 1.0, "backend": "cpu", "cnnbench": "0.1.0", "problem": None}  # fmt: skip
    assert resnet["arch"] == "resnet18" and resnet["bytes"] == 300 and "never completed" in resnet["problem"]
    assert info["pretrained"]["unfinished"] == [{"name": "lenet5-aaaaaaaaaaaaaaaa.tmp", "bytes": 500}]
    backends = [
        {"backend": "cpu", "programs": 3, "bytes": sizes["cpu"]},
        {"backend": "gpu", "programs": 1, "bytes": 700},
    ]
    assert info["programs"] == {"bytes": sizes["xla"], "backends": backends}
    assert info["similarity"] == {"bytes": 100, "entries": 2}

    assert main(["cache", "info", "--cache", str(root)]) == 0
    text = capsys.readouterr().out
    assert f"cache {root}: 8.0 KiB" in text and "pretrained bases: 2, 2.2 KiB" in text  # 8,151 and 2,236 bytes
    assert re.search(r"lenet5 +32×32×1 +1 +800 +45\.3% +12 cpu +0\.1\.0 +1\.4 KiB  lenet5-0123456789abcdef\n", text)
    assert re.search(
        r"resnet18 +- +- +- +- +- - +- +300 B  resnet18-fedcba9876543210: no meta.json: the entry was "
        r"never completed; rebuilt on first use",
        text,
    )
    assert "unfinished build (interrupted, or under way): lenet5-aaaaaaaaaaaaaaaa.tmp, 500 B" in text
    assert "compiled programs (XLA): cpu: 3, 5.0 KiB; gpu: 1, 700 B" in text
    assert "similarity entries: 2, 100 B" in text and "other files: 7 B" in text


def test_info_names_a_base_that_differs_from_its_sha256sums(cache, capsys) -> None:
    root, _ = cache
    checkpoint = root / "pretrained" / "lenet5-0123456789abcdef" / "state" / "checkpoint"
    checkpoint.write_bytes(b"y" + checkpoint.read_bytes()[1:])  # one byte
    assert main(["cache", "info", "--cache", str(root), "--json"]) == 0
    lenet = json.loads(capsys.readouterr().out)["pretrained"]["bases"][0]
    assert lenet["source_accuracy"] == 0.453  # what meta.json says still shows
    assert lenet["problem"].startswith("state/checkpoint differs from its sha256 in SHA256SUMS (recorded ")
    assert main(["cache", "info", "--cache", str(root)]) == 0
    assert re.search(r"  lenet5-0123456789abcdef: state/checkpoint differs from its sha256 in SHA256SUMS \(recorded "
                     r"[0-9a-f]{12}…, found [0-9a-f]{12}…\): it changed after it was written; rebuilt on first use",
                     capsys.readouterr().out)  # fmt: skip


def test_info_names_a_base_of_an_older_format(cache, capsys) -> None:
    """An entry without SHA256SUMS, from before format 2: its key is not today's, so it is never read again."""
    root, _ = cache
    base = root / "pretrained" / "lenet5-0123456789abcdef"
    old_key = {k: v for k, v in META["key"].items() if k != "format"}
    (base / "meta.json").write_text(json.dumps({**META, "key": old_key}))
    (base / "SHA256SUMS").unlink()
    assert main(["cache", "info", "--cache", str(root), "--json"]) == 0
    lenet = json.loads(capsys.readouterr().out)["pretrained"]["bases"][0]
    assert lenet["problem"] == (
        "format 1, from an older cnnbench: no longer read (its base is built anew, in a new entry)"
    )


def test_info_names_an_unreadable_meta_json(cache, capsys) -> None:
    root, _ = cache
    (root / "pretrained" / "lenet5-0123456789abcdef" / "meta.json").write_text("{not json")
    assert main(["cache", "info", "--cache", str(root), "--json"]) == 0
    lenet = json.loads(capsys.readouterr().out)["pretrained"]["bases"][0]
    assert lenet["source_accuracy"] is None and lenet["problem"].startswith("meta.json unreadable (JSONDecodeError")


@pytest.mark.parametrize(
    ("flags", "gone", "kept"),
    [(["--programs"], ["xla"], ["pretrained", "similarity"]),
     (["--pretrained"], ["pretrained", "similarity"], ["xla"]),
     ([], ["pretrained", "similarity", "xla"], [])],
)  # fmt: skip
def test_clear_removes_a_part_or_all_and_says_what_it_freed(cache, capsys, flags, gone, kept) -> None:
    root, sizes = cache
    assert main(["cache", "clear", "--cache", str(root), *flags]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in root.iterdir()) == sorted([*kept, "notes.txt"])  # a stranger's file stays
    freed = sum(sizes[part] for part in gone)
    assert f"freed {readable_size(freed)} ({freed:,} bytes) in {root}" in out
    counts = {"xla": "4 compiled programs", "pretrained": "2 pretrained bases", "similarity": "2 similarity entries"}
    assert [line.split(": ")[1].rsplit(",", 1)[0] for line in out.splitlines()[:-1]] == [counts[p] for p in gone]
    assert main(["cache", "clear", "--cache", str(root), *flags]) == 0
    assert capsys.readouterr().out == f"nothing to clear in {root}\n"


def test_clear_takes_one_part_at_most(cache, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["cache", "clear", "--cache", str(cache[0]), "--pretrained", "--programs"])
    assert exit_.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_the_default_cache_is_the_environments_else_the_working_directorys(cache, tmp_path, monkeypatch, capsys):
    root, _ = cache
    monkeypatch.setenv("CNNBENCH_CACHE", str(root))
    assert main(["cache", "info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == str(root)
    monkeypatch.delenv("CNNBENCH_CACHE")
    monkeypatch.chdir(tmp_path)
    assert main(["cache", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["path"] == str(tmp_path / ".cnnbench-cache") and not info["exists"] and info["total_bytes"] == 0
    assert main(["cache", "info"]) == 0
    assert capsys.readouterr().out == f"cache {tmp_path / '.cnnbench-cache'}: empty (no such directory)\n"


def test_info_clear_and_version_do_not_load_jax(cache) -> None:
    script = (
        "import sys; from cnnbench.cli import main; "
        f"assert main(['cache', 'info', '--cache', {str(cache[0])!r}]) == 0; "
        f"assert main(['cache', 'clear', '--programs', '--cache', {str(cache[0])!r}]) == 0; "
        "assert 'jax' not in sys.modules, 'jax loaded'"
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    done = subprocess.run([sys.executable, "-m", "cnnbench", "--version"], capture_output=True, text=True, check=True)
    assert done.stdout == f"cnnbench {__version__}\n"


# ------------------------------------------------------------------------------------------------ cache key


def key_of(tmp_path: Path, capsys, suite_text: str, *archs: str) -> str:
    path = tmp_path / f"suite{len(list(tmp_path.glob('suite*.toml')))}.toml"
    path.write_text(suite_text)
    assert main(["cache", "key", "--suite", str(path), *archs]) == 0
    key = capsys.readouterr().out
    assert re.fullmatch(r"[0-9a-f]{16}\n", key), key
    return key


def test_cache_key_changes_exactly_when_a_cached_base_would(tmp_path, tiny_suite_text: str, capsys) -> None:
    key = key_of(tmp_path, capsys, tiny_suite_text)
    assert key_of(tmp_path, capsys, tiny_suite_text) == key
    # what trains on the bases, not the bases: the targets' training, seeds, heads, strategies
    for old, new in (("[train]\nbatch_size = 32", "[train]\nbatch_size = 16"), ("steps = 12", "steps = 30"),
                     ("seeds = [0]", "seeds = [0, 1]"), ('heads = ["gap", "fc"]', 'heads = ["svm"]'),
                     ('"s3", "scratch"', '"scratch"')):  # fmt: skip
        assert new in (changed := tiny_suite_text.replace(old, new)) and key_of(tmp_path, capsys, changed) == key
    # the pretraining recipe and budget, the input, the width: another base
    for old, new in (("steps = 60", "steps = 61"), ("learning_rate = 3e-3", "learning_rate = 2e-3"),
                     ("seeds = [0]", "seeds = [0]\n[input]\nimg_size = 40"),
                     ("[pretrain]", "[arch.lenet5]\nwidth = 0.5\n\n[pretrain]")):  # fmt: skip
        assert new in (changed := tiny_suite_text.replace(old, new)) and key_of(tmp_path, capsys, changed) != key
    two = tiny_suite_text.replace('archs = ["lenet5"]', 'archs = ["lenet5", "alexnet"]')
    both = key_of(tmp_path, capsys, two)
    assert both != key and key_of(tmp_path, capsys, two, "lenet5") == key  # lenet5's base alone: the same
    assert key_of(tmp_path, capsys, two, "alexnet,lenet5") == key_of(tmp_path, capsys, two, "lenet5", "alexnet") == both


def test_cache_key_of_a_bad_suite_or_arch_is_an_error(tmp_path, capsys) -> None:
    assert main(["cache", "key", "--suite", str(tmp_path / "missing.toml")]) == 2
    assert "cnnbench cache key: " in capsys.readouterr().err
    assert main(["cache", "key", "--suite", "smoke", "resnet19"]) == 2
    assert "unknown arch 'resnet19'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ the command line


def test_version_and_plain_help(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"cnnbench {__version__}\n"
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "``" not in text and ":mod:" not in text and "cache" in text and "export" in text
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    bench = capsys.readouterr().out
    assert "--batch LIST" in bench and "--suite NAME|PATH" in bench and "--rounds N" in bench and "[ARCH ...]" in bench


def test_list_options_take_repeats_and_comma_lists_alike() -> None:
    repeated = cli._parser().parse_args(["bench", "lenet5", "resnet18", "--batch", "1", "--batch", "4",
                                         "--precision", "fp32", "--precision", "bf16", "--mode", "infer"])  # fmt: skip
    listed = cli._parser().parse_args(["bench", "lenet5,resnet18", "--batch", "1,4", "--precision", "fp32,bf16",
                                       "--mode", "infer"])  # fmt: skip
    assert vars(repeated) == vars(listed)
    assert (listed.archs, listed.batch, listed.precision, listed.mode) == (
        ["lenet5", "resnet18"], ["1", "4"], ["fp32", "bf16"], ["infer"])  # fmt: skip
    assert cli._parser().parse_args(["bench"]).batch == []


def test_engine_progress_goes_to_stderr_unless_quiet(monkeypatch, capsys) -> None:
    def command(args) -> int:
        logging.getLogger("cnnbench.engine.runner").info("pretraining lenet5: step 10/60")
        logging.getLogger("cnnbench.engine.runner").warning("a cache entry is unusable")
        print("the output")
        return 0

    monkeypatch.setattr(cli, "_cache_info", command)
    assert main(["cache", "info"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "the output\n"
    assert captured.err == "pretraining lenet5: step 10/60\na cache entry is unusable\n"
    assert main(["-q", "cache", "info"]) == 0
    assert capsys.readouterr().err == "a cache entry is unusable\n"
    assert not logging.getLogger("cnnbench").handlers  # the handler lives as long as the command
