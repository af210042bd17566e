"""The Train page's checks and choices that are not layout (ui.train_form, ui.lacosmic_form, ui.run_monitor)."""

from types import SimpleNamespace

from ui.lacosmic_form import lacosmic_params
from ui.run_monitor import weights_text
from segcore.trainer import LOSSES as TRAINER_LOSSES
from ui.train_form import DEFAULTS, LOSSES, RECIPES, backbone_values, config_problems, weights_file_choice


def _values(**changes):
    values = {name: value for name, value in DEFAULTS.items() if name not in ("data_dir", "out")}
    values.update(changes)
    return values


def test_the_defaults_pass_and_the_recommended_recipe_comes_first():
    assert config_problems(_values(), None) == []
    assert next(iter(RECIPES)) == DEFAULTS["input_recipe"]


def test_every_loss_the_trainer_knows_is_offered_and_each_passes():
    assert list(LOSSES) == list(TRAINER_LOSSES)
    for loss in LOSSES:
        assert config_problems(_values(loss=loss), None) == []


def test_config_problems_are_capitalised_sentences_from_train_config():
    problems = config_problems(_values(crop_size=100), None)
    assert problems and all(p[0].isupper() for p in problems)
    assert any("16" in p for p in problems)


def test_the_file_backbone_needs_a_weights_file():
    assert config_problems(_values(backbone_weights="file"), None) == [
        "Upload a weights file or type its path, or choose another backbone."
    ]
    assert config_problems(_values(backbone_weights="file"), "upload") == []


def test_weights_file_choice_prefers_an_upload_then_the_typed_path():
    assert weights_file_choice("file", True, "/x.h5") == "upload"
    assert weights_file_choice("file", False, "  /x.h5 ") == "/x.h5"
    assert weights_file_choice("file", False, "   ") is None
    assert weights_file_choice("imagenet", True, "/x.h5") is None


def test_the_tiny_backbone_starts_from_random_weights():
    assert backbone_values("tiny") == {"backbone": "tiny", "backbone_weights": "none"}
    assert backbone_values("imagenet") == {"backbone_weights": "imagenet"}
    assert config_problems(_values(**backbone_values("tiny")), None) == []


def test_lacosmic_params_keep_empty_noise_for_measuring():
    params = lacosmic_params(dict(sigclip=4, sigfrac=0.3, objlim=5, niter=4.0), dict(gain=None, readnoise=6))
    assert params == dict(sigclip=4.0, sigfrac=0.3, objlim=5.0, niter=4, gain=None, readnoise=6.0)
    assert isinstance(params["niter"], int) and isinstance(params["sigclip"], float)


def test_weights_text_names_the_file_and_the_reason_for_a_random_start():
    def run(weights):
        return SimpleNamespace(backbone_weights=weights)

    assert weights_text(run(None)) == ("decided when training starts", "")
    assert weights_text(run("imagenet")) == ("imagenet", "")
    assert weights_text(run("file: /w/r.h5")) == ("file /w/r.h5", "")
    weights, reason = weights_text(run("random: no internet"))
    assert weights == "random" and reason.strip() == "no internet"
