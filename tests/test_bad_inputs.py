"""Bad inputs through the real command line: each must fail with a message naming what is wrong.

`python tests/test_bad_inputs.py` prints the table of inputs and messages (for the reliability notes).
"""

import gzip
import io
import os
import sys
import tempfile
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest
from PIL import Image

from ae_jax.cli import main
from ae_jax.runtime import configure_logging

TINY = ["--config", "tiny", "--set", "train.batch_size=4"]
GREY = ["--set", "data.name=images", "--set", "data.channels=1", "--set", "model.decoder_conv_t_filters=8,1"]


def _png(path, shape=(40, 40, 3), mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, shape, np.uint8), mode).save(path)


def _grey(path):
    _png(path, shape=(40, 40), mode="L")


def _folder_with(root, bad_name, write_bad, n_good=6, make_good=_png):
    for i in range(n_good):
        make_good(os.path.join(root, f"ok{i}.png"))
    write_bad(os.path.join(root, bad_name))
    return root


def _truncated_png(path):
    _png(path)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])


def _corrupt_jpeg(path):
    open(path, "wb").write(b"\xff\xd8\xff\xe0 this is not a jpeg")


def _celeba(root, listed_extra=0):
    os.makedirs(os.path.join(root, "img_align_celeba"), exist_ok=True)
    lines = []
    for i in range(1, 9):
        Image.fromarray(np.full((218, 178, 3), i * 20, np.uint8)).save(
            os.path.join(root, "img_align_celeba", f"{i:06d}.jpg")
        )
        lines.append(f"{i:06d}.jpg {0 if i <= 6 else 1}")
    lines += [f"{i:06d}.jpg 0" for i in range(9, 9 + listed_extra)]
    open(os.path.join(root, "list_eval_partition.txt"), "w").write("\n".join(lines) + "\n")
    return root


def _truncated_idx(root):
    os.makedirs(root, exist_ok=True)
    header = np.array([0x803, 10, 28, 28], ">u4").tobytes()
    with gzip.open(os.path.join(root, "train-images-idx3-ubyte.gz"), "wb") as f:
        f.write(header + bytes(28 * 28 * 3))
    with gzip.open(os.path.join(root, "train-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(np.array([0x801, 10], ">u4").tobytes() + bytes(10))
    return root


def _z_file(root, z):
    os.makedirs(root, exist_ok=True)
    np.save(os.path.join(root, "z.npy"), z)
    return os.path.join(root, "z.npy")


def _normal_z():
    return np.random.default_rng(0).normal(size=(500, 8)).astype(np.float32)


def _nan_z():
    z = _normal_z()
    z[17, 3] = np.nan
    return z


def _constant_component_z():
    z = np.random.default_rng(0).normal(size=(500, 8)).astype(np.float32)
    z[:, 2] = 0.5
    return z


# (what is wrong, argv builder given a fresh folder, fragment the message must contain)
CASES = [
    ("unknown config key", lambda d: ["train", "--set", "model.zdim=3"], "unknown config key 'model.zdim'"),
    ("wrong type", lambda d: ["train", "--set", "model.z_dim=abc"], "model.z_dim: 'abc' is not a valid int"),
    ("z_dim <= 0", lambda d: ["train", "--set", "model.z_dim=0"], "model.z_dim: must be > 0"),
    (
        "kl_weight < 0",
        lambda d: ["train", "--config", "faces_vae_tiny_kl", "--set", "model.kl_weight=-1"],
        "model.kl_weight: must be >= 0",
    ),
    (
        "strides do not divide the input size",
        lambda d: ["train", "--set", "data.image_size=30"],
        "do not divide data.image_size=30",
    ),
    (
        "unknown activation",
        lambda d: ["train", "--set", "model.act=tanh"],
        "model.act: 'tanh' is not one of leaky_relu, relu, selu",
    ),
    ("config file that is not JSON", lambda d: ["train", "--config", _text(d, "c.json", "{oops")], "not valid JSON"),
    (
        "missing data folder",
        lambda d: ["train", "--set", "data.name=images", "--set", f"data.dir={d}/nope", *TINY],
        "{d}/nope",
    ),
    (
        "empty image folder",
        lambda d: ["train", "--set", "data.name=images", "--set", f"data.dir={_mkdir(d)}", *TINY],
        "empty: no images found",
    ),
    (
        "corrupt JPEG",
        lambda d: [
            "train",
            "--set",
            "data.name=images",
            "--set",
            f"data.dir={_folder_with(d, 'bad.jpg', _corrupt_jpeg)}",
            *TINY,
        ],
        "bad.jpg",
    ),
    (
        "truncated PNG",
        lambda d: [
            "train",
            "--set",
            "data.name=images",
            "--set",
            f"data.dir={_folder_with(d, 'cut.png', _truncated_png)}",
            *TINY,
        ],
        "cut.png",
    ),
    (
        "grey image in an RGB dataset",
        lambda d: [
            "train",
            "--set",
            "data.name=images",
            "--set",
            f"data.dir={_folder_with(d, 'grey.png', _grey)}",
            *TINY,
        ],
        "grey.png",
    ),
    (
        "colour image in a grey dataset",
        lambda d: [
            "train",
            *GREY,
            "--set",
            f"data.dir={_folder_with(d, 'colour.png', _png, make_good=_grey)}",
            *TINY,
        ],
        "colour.png: is colour (mode RGB) in a greyscale dataset; data.convert_mode=true converts such images",
    ),
    (
        "a channel count that is neither 1 nor 3",
        lambda d: ["train", "--set", "data.name=images", "--set", "data.channels=2"],
        "data.channels: 2 is not one of 0, 1, 3",
    ),
    (
        "a channel count for a dataset that has its own",
        lambda d: ["train", "--set", "data.channels=1"],
        "data.channels: only data.name=images can be read at another channel count",
    ),
    (
        "grey images for a decoder that ends in 3 filters",
        lambda d: ["train", "--set", "data.name=images", "--set", "data.channels=1"],
        "the last entry must equal the image channel count 1 of data.name='images' (data.channels=1), got 3",
    ),
    (
        "recolouring grey images",
        lambda d: ["train", *TINY, *GREY, "--set", "data.task=recolor"],
        "data.task: recolor needs RGB images",
    ),
    (
        "CelebA folder without list_eval_partition.txt",
        lambda d: ["train", "--set", "data.name=celeba", "--set", f"data.dir={_mkdir(d)}", *TINY],
        "list_eval_partition.txt",
    ),
    (
        "truncated IDX file",
        lambda d: [
            "train",
            "--config",
            "mnist",
            "--set",
            f"data.dir={_truncated_idx(d)}",
            "--set",
            "train.batch_size=4",
        ],
        "train-images-idx3-ubyte.gz",
    ),
    (
        "a batch larger than the training split (IDX header)",
        lambda d: ["train", "--config", "mnist", "--set", f"data.dir={_truncated_idx(d)}"],
        "train.batch_size=64 exceeds the 9 training images of data.name=mnist",
    ),
    (
        "NaN in z-points",
        lambda d: ["analyze", "--z", _z_file(d, _nan_z()), "--out", f"{d}/a", "--set", "distribution.tsne=false"],
        "row 17",
    ),
    (
        "z-points of the wrong rank",
        lambda d: ["analyze", "--z", _z_file(d, np.zeros(10, np.float32)), "--out", f"{d}/a"],
        "needs z of shape (N points, D components)",
    ),
    (
        "zero-variance component for a sampler",
        lambda d: [
            "sample",
            "--z",
            _z_file(d, _constant_component_z()),
            "--out",
            f"{d}/s",
            "--set",
            "generators.n=100",
            "--sampler",
            "uniform",
            "--param",
            "bound=1",
        ],
        "components have zero variance (first: [2])",
    ),
    (
        "unknown evaluator",
        lambda d: ["eval", "--z", _z_file(d, _normal_z()), "--out", f"{d}/e", "--evals", "distribution,magic"],
        "unknown evaluator(s) 'magic'; allowed: distribution, encode, generators, intrinsic_dimension, judge",
    ),
    (
        "unknown key of an evaluator's section",
        lambda d: ["analyze", "--z", _z_file(d, _normal_z()), "--out", f"{d}/a", "--set", "distribution.bins=10"],
        "'distribution.bin_width'?); valid keys at this level: bin_width, hist_range",
    ),
    (
        "a top-level key that belongs to a section",
        lambda d: ["train", "--set", "epochs=1"],
        "unknown config key 'epochs' (did you mean 'train.epochs' or 'judge.epochs'?)",
    ),
    ("misspelt preset", lambda d: ["train", "--config", "tiyn"], "nor a file (did you mean 'tiny'?)"),
    (
        "misspelt evaluator",
        lambda d: ["eval", "--z", _z_file(d, _normal_z()), "--out", f"{d}/e", "--evals", "distributon"],
        "unknown evaluator(s) 'distributon' (did you mean 'distribution'?)",
    ),
    ("misspelt study", lambda d: ["study", "dmeo", "--out", d], "unknown study 'dmeo' (did you mean 'demo'?)"),
    (
        "eval of z-points without --out",
        lambda d: ["eval", "--z", _z_file(d, _normal_z()), "--evals", "encode"],
        "--z needs --out FOLDER",
    ),
    (
        "--param without --sampler",
        lambda d: ["sample", "--z", _z_file(d, _normal_z()), "--out", f"{d}/s", "--param", "bound=2"],
        "--param bound=2 needs --sampler NAME",
    ),
    (
        "a batch larger than the training split (partition file)",
        lambda d: [
            "train",
            "--set",
            "data.name=celeba",
            "--set",
            f"data.dir={_celeba(d)}",
            *TINY[:2],
            "--set",
            "train.batch_size=8",
        ],
        "train.batch_size=8 exceeds the 6 training images of data.name=celeba",
    ),
    (
        "unknown config section",
        lambda d: ["analyze", "--z", _z_file(d, _normal_z()), "--out", f"{d}/a", "--set", "analysis.bin_width=1"],
        "unknown config key 'analysis'; valid keys at this level: name, seed, workdir, data, model, train, distrib",
    ),
    (
        "an evaluator that decodes, on z-points alone",
        lambda d: ["eval", "--z", _z_file(d, _normal_z()), "--out", f"{d}/e", "--evals", "reconstruction"],
        "evaluator 'reconstruction' needs a trained run folder",
    ),
    (
        "encode another dataset into the run's own z-point files",
        lambda d: ["encode", _fake_run(d), "--set", "data.num_images=50"],
        "--set changes the run's data: give one --split and --out",
    ),
    (
        "a training setting changed for the evaluation of a run",
        lambda d: ["eval", _fake_run(d), "--set", "model.z_dim=3"],
        "--set changes model of the trained run",
    ),
    (
        "unknown sampler",
        lambda d: [
            "sample",
            "--z",
            _z_file(d, np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)),
            "--out",
            f"{d}/s",
            "--sampler",
            "magic",
        ],
        "unknown sampler 'magic'",
    ),
    (
        "grid sampler too large",
        lambda d: [
            "sample",
            "--z",
            _z_file(d, np.random.default_rng(0).normal(size=(300, 64)).astype(np.float32)),
            "--out",
            f"{d}/s",
            "--sampler",
            "grid",
            "--param",
            "lo=-1",
            "--param",
            "hi=1",
            "--param",
            "points_per_axis=10",
        ],
        "10^64",
    ),
    ("encode a folder that is not a run", lambda d: ["encode", d], "config.json is missing"),
    (
        "--resume of a run that has no checkpoint",
        lambda d: ["train", "--config", "tiny", "--set", "name=nosuchrun", "--resume"],
        "--resume: {d}/runs/nosuchrun holds no checkpoint to resume; no run in {d}/runs holds checkpoints",
    ),
    ("--resume of a folder that is not a run", lambda d: ["train", "--resume", f"{d}/nope"], "{d}/nope: not a run"),
    ("a run folder without --resume", lambda d: ["train", _fake_run(d)], "given only to resume it: add --resume"),
    (
        "unknown study",
        lambda d: ["study", "nope", "--out", d],
        "unknown study 'nope'; studies: demo, random_points, component_distributions, filaments, ae_vs_vae",
    ),
    (
        "a setting the study's models do not use",
        lambda d: ["study", "filaments", "--out", d, "--set", "judge.epochs=3"],
        "--set judge.epochs: not used by study 'filaments'; sections used: name, seed, workdir, data, model, train",
    ),
    (
        "unknown key for every study",
        lambda d: ["study", "all", "--out", d, "--set", "judge.epoch=3"],
        "unknown config key 'judge.epoch'",
    ),
]


def _fake_run(d):
    """A run folder holding only its config.json (enough for the refusal, which comes before any loading)."""
    from ae_jax import config as C

    os.makedirs(os.path.join(d, "run"), exist_ok=True)
    C.save(C.load("tiny"), os.path.join(d, "run", "config.json"))
    return os.path.join(d, "run")


def _text(d, name, text):
    open(os.path.join(d, name), "w").write(text)
    return os.path.join(d, name)


def _mkdir(d):
    os.makedirs(os.path.join(d, "empty"), exist_ok=True)
    return os.path.join(d, "empty")


def run_case(build, folder):
    """(exit code, stderr) of the CLI on a bad input; workdir inside `folder` so nothing leaks."""
    argv = build(folder)
    if argv[0] == "train":
        argv += ["--set", f"workdir={folder}/runs"]
    err, out = io.StringIO(), io.StringIO()
    with redirect_stderr(err), redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse refuses a bad argument (--z) as it reads the command line
            code = e.code
    return code, err.getvalue().strip()


@pytest.mark.parametrize("what, build, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_a_clear_error(what, build, fragment, tmp_path):
    code, message = run_case(build, str(tmp_path))
    assert code == 2, message
    assert fragment.replace("{d}", str(tmp_path)) in message, message
    assert "Traceback" not in message


@pytest.mark.parametrize("name", ["filaments", "all"])
def test_a_study_refuses_bad_settings_before_writing_anything(name, tmp_path):
    bad = "judge.epochs=3" if name == "filaments" else "judge.epoch=3"
    code, message = run_case(lambda d: ["study", name, "--out", f"{d}/out", "--set", bad], str(tmp_path))
    assert code == 2 and "judge.epoch" in message and not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize(
    "argv, made",
    [
        (["train", "--set", "name=r", "--set", "data.name=images", "--set", "data.dir={d}/nowhere"], "runs/r"),
        (["train", "--set", "name=r", "--set", "data.name=images", "--set", "data.dir={d}/empty"], "runs/r"),
        (["analyze", "--z", "{d}/z1.npy", "--out", "{d}/a"], "a"),
    ],
    ids=["missing data.dir", "data.dir without images", "z-points of the wrong rank"],
)
def test_inputs_are_checked_before_any_folder_is_made(argv, made, tmp_path):
    os.makedirs(tmp_path / "empty")
    np.save(tmp_path / "z1.npy", np.zeros(10, np.float32))
    code, message = run_case(lambda d: [a.replace("{d}", d) for a in argv], str(tmp_path))
    assert code == 2, message
    assert not os.path.exists(tmp_path / made), message


def test_skip_mode_counts_bad_images(tmp_path, capsys):
    folder = _folder_with(str(tmp_path / "imgs"), "bad.jpg", _corrupt_jpeg, n_good=40)
    code = main(
        [
            "train",
            "--set",
            "data.name=images",
            "--set",
            f"data.dir={folder}",
            "--set",
            "data.on_bad_image=skip",
            "--set",
            "data.valid_fraction=0.5",
            "--set",
            f"workdir={tmp_path}/runs",
            "--set",
            "train.batch_size=2",
            "--set",
            "data.image_size=16",
            "--set",
            "train.epochs=1",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "skipped 1 bad images" in out.err  # the data line, logged on stderr


def test_annotations_naming_missing_images_report_what_was_found(tmp_path, capsys):
    configure_logging()
    root = _celeba(str(tmp_path / "celeba"), listed_extra=5)
    from ae_jax import config as C
    from ae_jax.data import datasets

    ds = datasets.load_split(C.load("case1", [f"data.dir={root}"]).data, "train")
    assert len(ds.images) == 6
    assert "6 of 11" in capsys.readouterr().err


if __name__ == "__main__":
    print("| bad input | exit code | message |\n|---|---|---|")
    for what, build, _ in CASES:
        with tempfile.TemporaryDirectory() as d:
            code, message = run_case(build, d)
        last = message.replace("\r", "\n").strip().splitlines()[-1]  # the error, after any progress bar
        print(f"| {what} | {code} | {last.replace(d, '<tmp>').replace('|', '/')} |")
    sys.exit(0)


def _subcommands():
    from ae_jax.cli import build_parser

    (sub,) = [a for a in build_parser()._actions if a.dest == "command"]
    return sub.choices


def test_every_option_has_help_and_required_options_claim_no_default():
    for name, parser in _subcommands().items():
        for action in parser._actions:
            assert action.help, f"ae-jax {name} {action.option_strings or action.dest} has no help"
            if action.required:
                assert "default" not in action.help, f"ae-jax {name} {action.option_strings}: {action.help}"


@pytest.mark.parametrize("command", ["eval", "analyze", "sample"])
def test_the_set_example_of_an_evaluation_command_is_accepted_by_it(command, tmp_path):
    from ae_jax.train.runs import load_run_config

    (action,) = [a for a in _subcommands()[command]._actions if "--set" in a.option_strings]
    example = action.help.rpartition("e.g. ")[2]
    assert load_run_config(_fake_run(str(tmp_path)), [example])


def test_version_comes_from_the_package_metadata(capsys):
    from importlib import metadata

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"ae-jax {metadata.version('ae-jax')}"
