"""Vocabulary tables for the synthetic note generator, taken from DOMAIN.md sections 3 and 4.

`SIGNS` maps each checklist name of the source data to the clinical phrase the source template
used and to the words users type instead (synonyms, abbreviations, British spellings).
`PROFILES` gives, per disease key of the catalogue, how many source records it had (the class
weight), its label variants as written in the `disease` column, its species mix and its sign
profile (checklist name, share of records). `EXTRA_SIGNS` are findings a vet writes that the
checklist lacks. Nothing here is copied from a source record; only the published shares are used.
"""

from __future__ import annotations

from dataclasses import dataclass

from vetllm.data.synth_signs import NONSPECIFIC_SIGNS, SIGNS  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class DiseaseProfile:
    """How one disease shows up in the source data set."""

    weight: int  # records in the 1,602-note source set (DOMAIN.md section 3)
    variants: tuple[tuple[str, float], ...]  # `disease` column spellings and their shares
    species: tuple[tuple[str, float], ...]  # species and their shares
    signs: tuple[tuple[str, float], ...]  # checklist name, share of records showing it
    confusable: tuple[str, ...] = ()  # disease keys a recorder plausibly mixes it up with


def _profile(weight, variants, species, signs, confusable=()) -> DiseaseProfile:
    return DiseaseProfile(weight, tuple(variants), tuple(species), tuple(signs), tuple(confusable))


_CATTLE = (("cow", 0.55), ("buffalo", 0.45))
_SMALL = (("sheep", 0.5), ("goat", 0.5))

PROFILES: dict[str, DiseaseProfile] = {
    "ppr": _profile(
        652,
        [("PPR", 0.6), ("P.P.R", 0.25), ("Kataa", 0.15)],
        _SMALL,
        [
            ("Fever", 0.53),
            ("Fluid leakage from nose", 0.47),
            ("blisters on lips", 0.41),
            ("Sever cough", 0.27),
            ("Water or fluid leakage from eyes,nose or mouth", 0.24),
            ("Cough", 0.22),
            ("Loose motions", 0.16),
        ],
        ["ccpp", "goat-pox"],
    ),
    "fmd": _profile(
        237,
        [("FMD", 0.8), ("Foot and mouth", 0.2)],
        [("cow", 0.47), ("buffalo", 0.38), ("sheep", 0.08), ("goat", 0.07)],
        [
            ("Mouth Frothing", 0.55),
            ("Blisters In Mouth", 0.45),
            ("Blisters On Feet", 0.41),
            ("Lameness", 0.40),
            ("Drop In Milk Production", 0.30),
        ],
        ["mastitis", "foot-rot"],
    ),
    "mastitis": _profile(
        196,
        [("Mastitis", 0.85), ("Mastits", 0.15)],
        [("cow", 0.5), ("buffalo", 0.38), ("goat", 0.07), ("sheep", 0.05)],
        [
            ("Milk In Semi Solid Form", 0.39),
            ("Abortion", 0.39),
            ("Teat Gnarls", 0.28),
            ("Drop In Milk Production", 0.27),
            ("Udder become swollen", 0.25),
            ("Fever", 0.14),
        ],
        ["brucellosis"],
    ),
    "hs": _profile(
        180,
        [("H.S", 1.0)],
        [("buffalo", 0.6), ("cow", 0.4)],
        [
            ("Difficulty In Breathing", 0.52),
            ("Breathing While Mouth Open", 0.42),
            ("Neck Swelling", 0.35),
            ("Tongue Coming Out Of Mouth", 0.29),
            ("Very High Fever", 0.13),
        ],
        ["bq", "anthrax"],
    ),
    "bq": _profile(
        136,
        [("B.Q", 1.0)],
        [("cow", 0.65), ("buffalo", 0.35)],
        [
            ("Air/crepitation feeling at surface of any body part", 0.55),
            ("Color Change Of Muscles of limb", 0.37),
            ("Very High Fever", 0.29),
            ("Sudden Death", 0.28),
            ("Lameness", 0.26),
        ],
        ["anthrax", "hs"],
    ),
    "ccpp": _profile(
        81,
        [("CCPP", 0.8), ("CCP", 0.2)],
        [("goat", 0.8), ("sheep", 0.2)],
        [
            ("Fluid leakage from nose", 0.85),
            ("Fever", 0.80),
            ("Water leakage from eyes", 0.74),
            ("Cough", 0.65),
            ("Sever cough", 0.28),
            ("Pleuritic pain", 0.15),
            ("Difficulty In Breathing", 0.15),
        ],
        ["ppr"],
    ),
    "anthrax": _profile(
        48,
        [("Anthrax", 1.0)],
        [("cow", 0.3), ("buffalo", 0.2), ("sheep", 0.25), ("goat", 0.25)],
        [
            ("Blood Leakage From Nose", 0.50),
            ("Sudden Death", 0.33),
            ("Fever", 0.21),
            ("Stiffening of body", 0.17),
            ("Rapid breathing", 0.12),
            ("Bleeding from orifices", 0.25),
        ],
        ["bq", "hs"],
    ),
    "foot-rot": _profile(
        24,
        [("Foot Rot", 1.0)],
        _SMALL,
        [("Lameness", 0.83), ("Weakness", 0.2), ("Foul smelling hoof", 0.4)],
        ["fmd"],
    ),
    "babesiosis": _profile(
        9,
        [("Babesiosis", 0.7), ("BABESIOSIS", 0.3)],
        [("buffalo", 0.5), ("cow", 0.5)],
        [
            ("Drop In Milk Production", 0.56),
            ("Very High Fever", 0.44),
            ("Sudden Death", 0.44),
            ("Red urine", 0.5),
            ("Ticks on body", 0.25),
            ("Jaundice", 0.15),
        ],
        ["theileriosis"],
    ),
    "brucellosis": _profile(
        7,
        [("Brucellosis", 1.0)],
        _CATTLE,
        [
            ("Drop In Milk Production", 1.0),
            ("Abortion", 1.0),
            ("Teat Gnarls", 0.86),
            ("Retained placenta", 0.4),
            ("Swollen joints", 0.2),
        ],
        ["mastitis"],
    ),
    "rabies": _profile(
        4,
        [("Rabies", 0.5), ("Rabbies", 0.5)],
        [("buffalo", 1.0)],
        [
            ("Drop In Milk Production", 0.6),
            ("Mouth Frothing", 0.8),
            ("Dog bite", 0.5),
            ("Aggression", 0.4),
        ],
        ["fmd"],
    ),
    "theileriosis": _profile(
        4,
        [("Theileriosis", 1.0)],
        _CATTLE,
        [
            ("Very High Fever", 1.0),
            ("Drop In Milk Production", 0.5),
            ("Swollen lymph nodes", 0.6),
            ("Ticks on body", 0.3),
        ],
        ["babesiosis"],
    ),
    "fascioliasis": _profile(
        4,
        [("Liver Fluke", 0.5), ("Fascioliasis", 0.5)],
        _SMALL,
        [
            ("Loose motions", 0.6),
            ("Weakness", 0.7),
            ("Swollen under jaw", 0.6),
            ("Bottle jaw", 0.4),
            ("Pale mucous membranes", 0.3),
        ],
        ["internal-worms"],
    ),
    "tuberculosis": _profile(
        1,
        [("T.B", 0.5), ("Tuberculosis", 0.5)],
        [("buffalo", 1.0)],
        [
            ("Drop In Milk Production", 0.7),
            ("Fever", 0.7),
            ("Cough", 0.4),
            ("Chronic cough", 0.5),
            ("Weight loss", 0.5),
        ],
    ),
    "goat-pox": _profile(
        1,
        [("Goat Pox", 1.0)],
        [("goat", 1.0)],
        [("Fever", 0.8), ("Lesion on un-hairy parts of body", 0.9), ("Skin nodules", 0.4)],
    ),
    # The 18 uncoded records of the source, spread over its eight uncoded diseases.
    "leg-fracture": _profile(
        3,
        [("Fracture of the leg", 1.0)],
        _SMALL,
        [("Lameness", 0.9), ("Weakness", 0.3), ("Injury", 0.6)],
    ),
    "internal-worms": _profile(
        3,
        [("Internal worms", 1.0)],
        _SMALL,
        [("Loose motions", 0.7), ("Weakness", 0.7), ("Hair fall", 0.3), ("Pot belly", 0.4)],
        ["fascioliasis"],
    ),
    "infection": _profile(
        2, [("Infection", 1.0)], _SMALL, [("Fever", 0.9), ("Weakness", 0.5), ("Abscess", 0.6)]
    ),
    "tympany": _profile(
        3,
        [("Tympany", 1.0)],
        _SMALL,
        [("Pain in stomach and screams", 0.9), ("Difficulty In Breathing", 0.6), ("Bloat", 0.7)],
    ),
    "ketosis": _profile(
        2,
        [("Ketosis", 1.0)],
        _SMALL,
        [("Weakness", 0.9), ("Drop In Milk Production", 0.6), ("Sweet breath", 0.5)],
    ),
    "laminitis": _profile(
        2,
        [("laminitis", 0.5), ("Lamititus", 0.5)],
        _SMALL,
        [("Lameness", 1.0), ("Weakness", 0.3), ("Hot hooves", 0.6)],
    ),
    "abortion": _profile(
        2,
        [("Abortion", 1.0)],
        _SMALL,
        [("Abortion", 1.0), ("Fever", 0.3), ("Vaginal discharge", 0.4)],
    ),
    "flu": _profile(
        1,
        [("Flue", 1.0)],
        _SMALL,
        [("Fluid leakage from nose", 0.9), ("Cough", 0.7), ("Fever", 0.5), ("Sneezing", 0.5)],
    ),
    # In the catalogue but absent from the source data (weight 0: never in a generated data
    # set's class mix); profiles from veterinary knowledge, used for the training mix.
    "anaplasmosis": _profile(
        0,
        [("Anaplasmosis", 1.0)],
        _CATTLE,
        [
            ("Very High Fever", 0.6),
            ("Pale mucous membranes", 0.7),
            ("Jaundice", 0.6),
            ("Drop In Milk Production", 0.5),
            ("Weakness", 0.4),
        ],
        ["babesiosis"],
    ),
    "enterotoxemia": _profile(
        0,
        [("Enterotoxemia", 0.7), ("Interotoximia", 0.3)],
        _SMALL,
        [
            ("Sudden Death", 0.7),
            ("Convulsions", 0.6),
            ("Loose motions", 0.5),
            ("Pain in stomach and screams", 0.4),
        ],
    ),
    "metritis": _profile(
        0,
        [("Metritis", 1.0)],
        _CATTLE,
        [
            ("Vaginal discharge", 0.9),
            ("Fever", 0.6),
            ("Retained placenta", 0.4),
            ("Drop In Milk Production", 0.5),
        ],
    ),
    "pox": _profile(
        0,
        [("Pox", 1.0)],
        (("sheep", 0.6), ("cow", 0.4)),
        [("Lesion on un-hairy parts of body", 0.9), ("Skin nodules", 0.6), ("Fever", 0.6)],
    ),
}

# Findings outside the checklist that a vet would write for the disease (free-text style only).
# One line per disease, findings separated by '; ' (kept as text so the table stays readable).
_EXTRA_SIGN_TEXT = {
    "ppr": "erosions on gums; foul smell from mouth; crusty eyelids; several goats in the flock sick; pneumonia signs; necrotic stomatitis",
    "fmd": "drooling ropy saliva; smacking lips; kicking hind feet; ruptured vesicles on tongue; whole herd affected; off feed, not chewing",
    "mastitis": "hot painful quarter; blood-tinged milk; CMT positive; one quarter hard; pus in milk; watery yellow secretion from teat",
    "hs": "hot painful swelling of throat and brisket; snoring respiration; profuse salivation; after heavy rain; congested mucous membranes; neighbour lost a buffalo yesterday",
    "bq": "hot swollen thigh; crackling sound on pressing hind leg; well-fed animal, sudden onset; swelling on shoulder; dark red muscle on incision",
    "ccpp": "extended neck while breathing; grunting; pleuritic pain on chest; frothy nasal discharge; high mortality in goats of village",
    "anthrax": "tarry blood from anus; blood does not clot; bleeding from natural orifices; no rigor mortis; carcass bloated quickly",
    "foot-rot": "foul smelling hoof; interdigital lesion with pus; grazing on wet pasture; walking on knees; under-run hoof horn",
    "babesiosis": "red urine; coffee coloured urine; haemoglobinuria; pale mucous membranes; ticks on body; jaundiced eyes",
    "brucellosis": "late term abortion; retained placenta; swollen knee joints; repeat breeder",
    "rabies": "dog bite history 3 weeks ago; bitten by stray dog last month; aggressive, attacking people; bellowing continuously; cannot swallow water; hind limb paralysis",
    "theileriosis": "swollen lymph nodes; enlarged prescapular lymph nodes; heavy tick load; corneal opacity; pale anaemic mucosa",
    "fascioliasis": "bottle jaw; pale conjunctiva; anaemia; weight loss; grazing near canal",
    "tuberculosis": "chronic cough for months; progressive weight loss; enlarged lymph nodes; fluctuating fever",
    "goat-pox": "scabs on ears and udder; nodules on lips; papules on skin",
    "leg-fracture": "fell in ditch; leg dangling; swelling on limb after injury",
    "internal-worms": "pot belly; rough coat; poor growth; worms seen in dung",
    "infection": "wound with pus; abscess on neck; infected wound",
    "tympany": "left flank distended; drum-like sound on left side; grazed lush berseem",
    "ketosis": "sweet smell of breath; off feed; late pregnancy with twins",
    "laminitis": "hot hooves; grain overload; standing with feet forward",
    "abortion": "aborted fetus found; vaginal discharge",
    "flu": "sneezing; mild fever; change of weather",
    "anaplasmosis": "yellow mucous membranes; ticks seen; no red urine; marked anaemia",
    "enterotoxemia": "found dead after grain feeding; kids on lush pasture; not vaccinated for ET",
    "metritis": "calved 5 days ago; foul smelling uterine discharge; dystocia at calving",
    "pox": "pock lesions on udder and teats; scabs around muzzle",
}
EXTRA_SIGNS: dict[str, tuple[str, ...]] = {
    key: tuple(text.split("; ")) for key, text in _EXTRA_SIGN_TEXT.items()
}

# Context a vet writes that says little about the diagnosis (free-text style only).
CONTEXT_PHRASES = (
    "off feed",
    "not ruminating",
    "dull",
    "vaccination status unknown",
    "dewormed 3 months ago",
    "recently bought from market",
    "not vaccinated",
    "owner gave home remedy",
    "reduced appetite",
)

BREEDS: dict[str, tuple[str, ...]] = {
    "cow": ("Sahiwal", "Cholistani", "Red Sindhi", "Dhanni", "HF cross", "crossbred"),
    "buffalo": ("Nili-Ravi", "Kundi", "Azi Kheli", "Nili Ravi"),
    "sheep": ("Kajli", "Lohi", "Thalli", "Salt Range", "Kachhi"),
    "goat": ("Beetal", "Teddy", "Dera Din Panah", "Kamori", "Nachi", "Barbari"),
}

# (words for an adult female that can be in milk or pregnant, other words) per species; the
# first are used when the signs need them (milk, udder, abortion).
ANIMAL_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "cow": (("cow", "milking cow", "dairy cow", "cow"), ("heifer", "bull", "bullock", "calf")),
    "buffalo": (
        ("buffalo", "she-buffalo", "buff", "milking buffalo"),
        ("buffalo heifer", "buffalo calf", "buffalo bull"),
    ),
    "sheep": (("ewe", "sheep", "sheep"), ("ram", "lamb", "sheep")),
    "goat": (("doe", "goat", "goat"), ("buck", "kid", "goat")),
}

# Signs that only a female animal shows: the note then names a cow, ewe, doe, she-buffalo.
FEMALE_SIGNS = frozenset(
    {
        "Drop In Milk Production",
        "Milk In Semi Solid Form",
        "Teat Gnarls",
        "Udder become swollen",
        "Abortion",
        "Retained placenta",
        "Vaginal discharge",
    }
)

# Normal rectal temperature in degrees F (midpoint of the usual range), per species.
NORMAL_TEMP_F = {"cow": 101.8, "buffalo": 101.2, "sheep": 102.5, "goat": 102.8}

# Words for the young cattle that black quarter strikes (6-24 months).
YOUNG_WORDS = {
    "cow": ("calf", "heifer", "young bull"),
    "buffalo": ("buffalo calf", "buffalo heifer"),
}

# Sentences around the sign list, as the source template writes them; the first dominates.
TEMPLATES = (
    (
        "Clinical Note: {species}. Clinical presentation includes {signs}. "
        "Physical examination reveals these clinical signs.",
        0.8,
    ),
    (
        "Clinical Note: {species}. The animal presents with {signs}. "
        "These findings were noted on physical examination.",
        0.08,
    ),
    ("Clinical Note: {species}. Observed clinical signs: {signs}.", 0.07),
    ("Clinical Note: {species}. History and examination show {signs}.", 0.05),
)
