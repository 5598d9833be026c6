"""Post-processing: the seed's failure modes (concatenated codes, 9-digit codes, 'appropriate',
EOS strings, repeats, unknown digit strings) and the strict/lenient boundary."""

import subprocess
import sys

import pytest

from vetllm.catalogue import load_catalogue
from vetllm.errors import VetLLMError
from vetllm.postprocess import extract_answer_span, parse_strict, postprocess, split_digit_run

PPR, FMD, MASTITIS, HS, CCPP = "1679004", "3974005", "72934000", "198462004", "2260006"


def test_clean_answer_is_strict():
    result = postprocess("Diagnosed conditions: 198462004")
    assert result.codes == [HS]
    assert result.strict_codes == [HS]
    assert result.repairs == [] and result.unknown_codes == []


def test_concatenated_codes_are_split():
    result = postprocess("Diagnosed conditions: 16790041679004")
    assert result.codes == [PPR]
    assert result.strict_codes is None
    assert any("split 16790041679004 into 1679004 + 1679004" in r for r in result.repairs)
    assert any("repeated" in r for r in result.repairs)


def test_nine_digit_code_inside_a_run_survives():
    # Fixed 8-digit chunks would give 16790041, 98462004: both wrong.
    result = postprocess("Diagnosed conditions: 1679004198462004")
    assert result.codes == [PPR, HS]
    assert result.unknown_codes == []


def test_long_mixed_run_uses_whole_run():
    run = PPR + HS + MASTITIS + CCPP + HS
    assert result_codes(run) == [PPR, HS, MASTITIS, CCPP]


def result_codes(span: str) -> list[str]:
    return postprocess("Diagnosed conditions: " + span).codes


def test_split_prefers_fewest_pieces_and_full_cover():
    codes = {"1234567", "8901234", "12345678901234", "5678"}
    # full cover with one piece beats two pieces
    assert split_digit_run("12345678901234", codes) == [("12345678901234", True)]
    # leftover digits become one unknown piece each stretch
    assert split_digit_run("99123456799", codes) == [
        ("99", False),
        ("1234567", True),
        ("99", False),
    ]
    assert split_digit_run("42", codes) == [("42", False)]


def test_split_does_not_read_a_code_off_the_end_of_a_run():
    # "1679004" is a prefix of a 9-character slice that runs past the end: must not crash or lie
    assert split_digit_run("51679004", {PPR, HS}) == [("5", False), (PPR, True)]


def test_appropriate_is_not_ppr():
    result = postprocess("Diagnosed conditions: appropriate treatment advised")
    assert result.codes == []
    assert postprocess("Diagnosed conditions: PPR").codes == [PPR]


def test_disease_names_and_variants_map_with_repairs():
    result = postprocess("Diagnosed conditions: P.P.R and foot and mouth disease")
    assert result.codes == [PPR, FMD]
    assert sum("mapped the name" in r for r in result.repairs) == 2
    assert result.strict_codes is None


@pytest.mark.parametrize("eos", ["</s>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "\n"])
def test_span_ends_at_eos_strings(eos):
    result = postprocess(f"Diagnosed conditions: {MASTITIS}{eos}{FMD} junk")
    assert result.codes == [MASTITIS]
    assert result.strict_codes == [MASTITIS]
    assert any("ignored" in note for note in result.notes)


def test_eos_right_after_prefix_gives_empty_answer():
    result = postprocess("Diagnosed conditions: </s>1679004")
    assert result.codes == [] and result.answer_span == ""
    assert result.strict_codes is None


def test_repeated_codes_are_deduplicated_and_not_strict():
    result = postprocess(f"Diagnosed conditions: {PPR}, {PPR}, {PPR}")
    assert result.codes == [PPR]
    assert result.strict_codes is None
    assert result.repairs == [f"dropped repeated {PPR}"]


def test_unknown_digit_strings_are_reported():
    result = postprocess("Diagnosed conditions: 12345678, 2" + PPR + "999")
    assert result.codes == [PPR]
    assert result.unknown_codes == ["12345678", "2", "999"]
    assert any("12345678" in r and "not a catalogue code" in r for r in result.repairs)


def test_local_labels_as_written():
    result = postprocess("Diagnosed conditions: local:foot-rot, 72934000")
    assert result.codes == ["local:foot-rot", MASTITIS]
    assert result.strict_codes == ["local:foot-rot", MASTITIS]
    odd = postprocess("Diagnosed conditions: local:no-such-thing")
    assert odd.codes == [] and odd.unknown_codes == ["local:no-such-thing"]


def test_separators_and_whitespace_in_strict_lists():
    assert parse_strict(f" {PPR} ;{CCPP} ", load_catalogue()) == [PPR, CCPP]
    assert parse_strict(f"{PPR},", load_catalogue()) is None
    assert parse_strict(f"{PPR}.", load_catalogue()) is None
    assert parse_strict(f"{PPR} {CCPP}", load_catalogue()) is None
    assert postprocess(f"Diagnosed conditions: {PPR}.").repairs  # lenient read says why


def test_answer_span_without_prefix_and_with_echoed_prompt():
    span, notes = extract_answer_span("### Input:\nsheep\n\n### Response:\n2260006</s>")
    assert span == CCPP and notes
    span, _ = extract_answer_span("diagnosed conditions: 1679004\nDiagnosed conditions: 3974005")
    assert span == PPR  # the first answer counts, not a later made-up one


def test_catalogue_extension_adds_codes(tmp_path):
    extra = tmp_path / "orf.json"
    extra.write_text('{"diseases": [{"key": "orf", "name": "Orf", "code": "4009006"}]}')
    catalogue = load_catalogue(str(extra))
    assert postprocess("Diagnosed conditions: 40090061679004", catalogue).codes == ["4009006", PPR]


def test_to_dict_has_contract_fields():
    out = postprocess("Diagnosed conditions: 1679004").to_dict()
    for key in ("codes", "answer_span", "unknown_codes", "repairs", "strict_codes"):
        assert key in out
    assert out["format_valid"] is True


def test_a_looping_model_gives_short_repair_messages():
    result = postprocess("Diagnosed conditions: " + (PPR + HS) * 2000 + "77")
    assert result.codes == [PPR, HS] and result.unknown_codes == ["77"]
    names = postprocess("Diagnosed conditions: " + "PPR, appropriate " * 20000)  # ~340 kB
    assert names.codes == [PPR]
    for repairs in (result.repairs, names.repairs):
        assert sum(len(line) for line in repairs) < 1000
    assert "20000 times" in names.repairs[0]


@pytest.mark.parametrize("bad", [None, 1679004, ["1679004"]])
def test_non_text_output_is_refused(bad):
    with pytest.raises(VetLLMError, match="must be text"):
        postprocess(bad)


def test_metrics_and_postprocess_do_not_import_torch_gradio_or_sklearn():
    code = (
        "import sys, vetllm.metrics, vetllm.postprocess, vetllm.baselines;"
        "print(sorted(m for m in ('torch', 'gradio', 'sklearn', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
