import pytest

from promptft import demo
from promptft.errors import DataError


def _write_sst2(root):
    for seed_dir in ("k-shot/16-42",):
        d = root / "SST-2" / seed_dir
        d.mkdir(parents=True)
        for split in ("train", "dev"):
            (d / f"{split}.tsv").write_text("sentence\tlabel\ngood film .\t1\nbad film .\t0\n")
    (root / "SST-2" / "test.tsv").write_text('sentence\tlabel\na " quoted film .\t1\n')


def test_demo_reads_the_local_lmbff_split(tmp_path, monkeypatch):
    _write_sst2(tmp_path)
    monkeypatch.setenv("PROMPTFT_DATA", str(tmp_path))
    train, dev, test, source = demo.load_sst2()
    assert [e.label for e in train] == ["positive", "negative"] and len(dev) == 2
    assert test[0].fields["text"] == 'a " quoted film .'
    assert source.endswith("SST-2")


def test_demo_without_data_offline_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTFT_DATA", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError, match="PROMPTFT_DATA"):
        demo.load_sst2()


def test_demo_prompt_is_valid_for_its_labels():
    from promptft.prompts import Template, Verbalizer

    Template(demo.TEMPLATE).check_fields({"text"})
    Verbalizer(demo.LABEL_WORDS).check_labels(list(demo.LABEL_MAP.values()))
