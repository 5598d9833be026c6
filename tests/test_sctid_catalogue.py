from vetllm.catalogue import check_code, load_catalogue, normalise_name
from vetllm.sctid import check_sctid, verhoeff_check_digit, verhoeff_is_valid

FAILING_SOURCE_CODES = [
    "1679004",
    "3974005",
    "29600000",
    "2260006",
    "40214000",
    "24026003",
    "14146002",
    "24694002",
    "4764006",
    "57428005",
    "50868007",
    "363196005",
]
VALID_CODES = [
    "72934000",
    "198462004",
    "75702008",
    "56717001",
    "409498004",
    "14168008",
    "15264008",
    "370514003",
    "74942003",
]


def test_source_codes_that_fail_the_check_digit():
    assert [c for c in FAILING_SOURCE_CODES if check_sctid(c).valid] == []
    assert len(FAILING_SOURCE_CODES) == 12


def test_valid_codes_pass():
    assert all(check_sctid(c).valid for c in VALID_CODES)


def test_check_digit_round_trip():
    for stem in ["7293400", "19846200", "40949800"]:
        assert verhoeff_is_valid(stem + verhoeff_check_digit(stem))


def test_structural_rules():
    assert "6 to 18" in check_sctid("12345").reason
    assert "starts with 0" in check_sctid("072934000").reason
    assert not check_sctid("12a45678").valid
    # description partition (01) is not a concept
    assert "description" in check_sctid("1234567014").reason or not check_sctid("1234567014").valid


def test_label_variants_map_to_one_disease():
    cat = load_catalogue()
    assert cat.lookup_name("P.P.R").label == cat.lookup_name("Kataa").label == "1679004"
    assert cat.lookup_name("Mastits").label == "72934000"
    assert cat.lookup_name("Lamititus").label == "local:laminitis"
    assert cat.lookup_name("appropriate") is None
    assert normalise_name(" H.S ") == "hs"


def test_uncoded_diseases_have_local_labels():
    cat = load_catalogue()
    foot_rot = cat.lookup_name("Foot Rot")
    assert foot_rot.code is None and foot_rot.label == "local:foot-rot"
    assert cat.by_label("local:foot-rot") is foot_rot


def test_mentions_respect_word_boundaries():
    cat = load_catalogue()
    found = cat.find_mentions("appropriate care; suspect P.P.R, not foot and mouth disease")
    assert [m.disease.key for m in found] == ["ppr", "fmd"]


def test_catalogue_extension(tmp_path):
    extra = tmp_path / "mine.json"
    extra.write_text(
        '{"diseases": [{"key": "ppr", "name": "PPR", "variants": ["Ovine rinderpest"]},'
        ' {"key": "orf", "name": "Orf", "code": "4009006", "variants": ["Contagious ecthyma"]}]}'
    )
    cat = load_catalogue(str(extra))
    assert cat.lookup_name("ovine rinderpest").label == "1679004"
    assert cat.lookup_name("contagious ecthyma").label == "4009006"
    assert cat.version.startswith("source-1+")


def test_check_code_answers_codes_names_local_labels_and_suggested_codes():
    catalogue = load_catalogue()
    anthrax = check_code(" 409498004 ", catalogue)
    assert anthrax["valid"] is True and anthrax["disease"] == "Anthrax"
    assert check_code("PPR", catalogue)["catalogue_label"] == "1679004"
    local = check_code("local:foot-rot", catalogue)
    assert local["valid"] is False and "no SNOMED code" in local["reason"]
    assert check_code("40214000", catalogue)["suggested_code"] == "409498004"
    assert check_code("12", catalogue)["valid"] is False and "disease" not in check_code(
        "12", catalogue
    )
