"""When the model should not answer: out-of-scope notes and low-confidence answers.

A model can only know what its training could have shown it. The out-of-scope check (always
on) measures that directly: the share of the note's content words (letters only, English
function words left out) that belong to the clinical vocabulary the run can have learned from:
the catalogue's disease names and variants, the synthetic note generator's vocabulary (template
and free-text styles, every catalogue disease's signs), a short list of general veterinary
words, and the run's own training notes. Gibberish, unrelated text and notes that are empty
after cleaning (numbers and symbols only) fall below it; a clinical note, even hand-written
with unusual words, keeps most of its words inside it. The model's own uncertainty decides the
borderline: a note with few known words is answered only when the model is sure of it.

The confidence threshold is a run setting (off by default): chosen on validation for a target
accuracy (vetllm.calibration.choose_threshold) and stored in the run folder. An abstained answer
has no code; its reason starts with REFER. Pure Python: no torch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from vetllm.catalogue import Catalogue
from vetllm.errors import VetLLMError

REFER = "no code: refer to a veterinarian"
MIN_KNOWN_SHARE = 0.5  # below it, most of the note is words no training text ever held
SURE_KNOWN_SHARE = 0.75  # between the two, the note is answered only when the model is sure
SURE_CONFIDENCE = 0.5  # "sure": the calibrated answer confidence at least this
SYNTH_NOTES = 3000  # synthetic notes whose words join the vocabulary (both styles, fixed seed)
_WORD = re.compile(r"[^\W\d_]{2,}")  # two or more letters, any alphabet

STOP_WORDS = frozenset(
    """a an the and or but if of to in on at by for from with without into onto over under
    about after before during since until than then this that these those it its is are was
    were be been being has have had do does did not no nor so as also very too can could
    should would may might will shall i me my we our you your he him his she her they them
    their there here what which who whom whose when where why how all any some each per
    up down out off again just only own same such more most other both few now next last
    first second one two three four five six seven eight nine ten several many""".split()
)
# General veterinary words a vet may write that the generator need not use.
GENERAL_CLINICAL = frozenset(
    """animal animals livestock cattle cow cows bull calf calves heifer steer ox buffalo
    buffaloes sheep ewe ram lamb lambs goat goats doe buck kid kids herd flock farm farmer
    owner history presented presents presenting examination exam clinical signs sign symptoms
    symptom diagnosis suspected suspect observed noted reports reported since days day weeks
    week hours months month old year years age aged temperature temp pulse respiration rate
    fever febrile afebrile anorexia inappetence appetite lethargy lethargic dull depressed
    weak weakness recumbent recumbency down lame lameness limping swelling swollen oedema
    edema discharge nasal ocular vaginal diarrhoea diarrhea dysentery bloody blood cough
    coughing dyspnoea dyspnea breathing respiratory salivation drooling frothing lesions
    lesion ulcers ulcer vesicles blisters nodules scabs skin hair wool udder teat milk
    abortion aborted stillbirth infertility pale mucous membranes jaundice icterus urine
    haematuria hematuria emaciation emaciated weight loss thin death died dead sudden
    mortality tremors convulsions paralysis ataxia aggression bellowing mouth tongue lips
    gums hooves feet foot legs joints lymph nodes abdomen rumen bloat colic dehydration
    dehydrated vaccinated vaccination unvaccinated treated treatment antibiotic tick ticks
    worms fluke grazing pasture eye eyes cornea corneal opacity conjunctiva conjunctivitis
    lacrimation tearing anaemia anemia anaemic anemic mucosa mucosal hyperaemia congestion
    congested petechiae haemorrhage hemorrhage haemorrhages bleeding nose nostrils muzzle
    crusts crusting scabby pustules papules erosions sores wounds wound abscess pus fluid
    neck head jaw throat chest brisket lungs lung pneumonia heart cardiac liver kidney
    stomach intestine gut faeces feces dung stool constipation straining tenesmus vomiting
    rumination ruminating cud chewing grinding teeth shivering sweating panting tachypnoea
    tachypnea tachycardia fast rapid slow shallow laboured labored grunting nasal mastitis
    hard hot painful pain tender reluctant move walk standing lying stiff gait staggering
    circling blind blindness salivating hypersalivation inflamed inflammation redness
    yellow brown white red dark watery mucoid mucopurulent purulent foul smelling smell
    odour odor profuse mild moderate severe acute chronic intermittent persistent sudden
    onset progressive high low body condition score poor good thirst drinking eating off
    feed water milk yield production drop decreased reduced increased retained placenta
    calving kidding lambing lambed calved kidded pregnant pregnancy birth newborn young adult
    female male left right flank distended distension grazed lush legume clover aggressive
    aggression swallowing sunken losing lost quarter quarters claw claws hoof muscle muscles
    thigh shoulder hindquarter crepitation crepitant gas bloated enlarged""".split()
)


# reason kind -> words only that kind's reason holds (evaluations count abstentions by kind)
REASON_KINDS = {
    "empty after cleaning": "no words after cleaning",
    "out of scope": "(out of scope",
    "possibly out of scope": "possibly out of scope",
    "no catalogue code": "names no catalogue code",
    "below the confidence threshold": "below this run's threshold",
}


def reason_kind(reason: str) -> str:
    """The kind of an abstention reason (a key of REASON_KINDS), "other" if none matches."""
    return next((kind for kind, words in REASON_KINDS.items() if words in reason), "other")


def note_words(text: str) -> list[str]:
    """Content words of a note: runs of 2+ letters, lower-case, function words left out."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]


@lru_cache(maxsize=4)
def _base_vocabulary(catalogue: Catalogue) -> frozenset[str]:
    """Catalogue names and variants, the generator's words and the general clinical list."""
    from vetllm.data.synth import generate_records
    from vetllm.data.synth_mix import clinical_vocabulary_texts

    words = set(GENERAL_CLINICAL)
    for text in clinical_vocabulary_texts(catalogue):  # every wording the generator knows
        words.update(note_words(text))
    for disease in catalogue.diseases:
        for text in (disease.name, disease.key, *disease.variants, *disease.species):
            words.update(note_words(text))
    for record in generate_records(n=SYNTH_NOTES, seed=0, free_text_share=0.5):
        words.update(note_words(record.note))
        for symptom in (record.extra or {}).get("symptoms", []):
            words.update(note_words(str(symptom)))
    return frozenset(words)


def clinical_vocabulary(catalogue: Catalogue, training_notes: Iterable[str] = ()) -> frozenset:
    """Every content word the run can have learned from (see the module docstring)."""
    words = set(_base_vocabulary(catalogue))
    for note in training_notes:
        words.update(note_words(note))
    return frozenset(words)


@dataclass(frozen=True)
class ScopeCheck:
    """How much of a note is clinical vocabulary the run knows."""

    n_words: int
    n_known: int

    @property
    def known_share(self) -> float:
        return self.n_known / self.n_words if self.n_words else 0.0


def check_scope(note: str, vocabulary: frozenset) -> ScopeCheck:
    """Count the note's content words and those in `vocabulary`."""
    words = note_words(note)
    return ScopeCheck(len(words), sum(w in vocabulary for w in words))


@dataclass
class AbstentionPolicy:
    """The always-on scope check plus the run's optional confidence threshold per decoding."""

    vocabulary: frozenset
    thresholds: dict[str, float] = field(default_factory=dict)  # decoding -> min confidence
    target_accuracy: float | None = None  # what the thresholds were chosen for

    def reason(self, note: str, codes: list[str], confidence: float, decoding: str) -> str | None:
        """Why this answer must not be given, or None when it may be."""
        scope = check_scope(note, self.vocabulary)
        if not scope.n_words:
            return f"{REFER} (the note has no words after cleaning: only numbers or symbols)"
        known = f"{scope.n_known} of {scope.n_words} words"
        if scope.known_share < MIN_KNOWN_SHARE:
            return f"{REFER} (out of scope: only {known} are clinical vocabulary this model knows)"
        if scope.known_share < SURE_KNOWN_SHARE and confidence < SURE_CONFIDENCE:
            return (
                f"{REFER} (possibly out of scope: {known} are known clinical vocabulary and the "
                f"model is unsure, confidence {confidence:.2f})"
            )
        if not codes:
            return f"{REFER} (the model's answer names no catalogue code)"
        threshold = self.thresholds.get(decoding)
        if threshold is not None and confidence < threshold:
            target = f" for {self.target_accuracy:.0%} accuracy" if self.target_accuracy else ""
            return (
                f"{REFER} (confidence {confidence:.2f} is below this run's threshold "
                f"{threshold:.2f}, chosen on validation{target})"
            )
        return None


def run_policy(cfg, catalogue: Catalogue, calibration: dict) -> AbstentionPolicy:
    """The abstention policy of a run: its vocabulary plus the thresholds in its calibration."""
    notes: list[str] = []
    if cfg is not None:
        from vetllm.data.loading import load_dataset_file

        try:
            train_path, _ = cfg.data_paths()
            loaded = load_dataset_file(train_path, on_error="skip", catalogue=catalogue)
            notes = [r.note for r in loaded.records]
        except VetLLMError:
            notes = []  # training data moved: the catalogue and generator vocabulary remain
    thresholds = {
        decoding: float(value)
        for decoding, value in (calibration.get("thresholds") or {}).items()
        if isinstance(value, (int, float))
    }
    return AbstentionPolicy(
        clinical_vocabulary(catalogue, notes), thresholds, calibration.get("target_accuracy")
    )
