"""The clinical-sign checklist of the synthetic notes: template phrase and free-text wordings.

The first part is the source data's checklist (DOMAIN.md section 4), each name with the phrase
the source template wrote and the words vets type instead. The second part adds the findings a
vet records for the rarer diseases, which the source checklist lacks but which tell them apart
(red urine in babesiosis, swollen lymph nodes in theileriosis, a dog bite before rabies ...).
They are used in both styles, at modest shares (see `synth_vocab.PROFILES`), so a model trained
on template notes can still learn what distinguishes a rare disease.
"""

from __future__ import annotations

# checklist name -> (phrase in the source template, free-text ways of writing it)
SIGNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "Fever": ("fever", ("fever", "pyrexia", "high temp", "fever")),
    "Very High Fever": (
        "high fever",
        ("high fever", "very high temp", "high grade fever", "burning with fever"),
    ),
    "Fluid leakage from nose": (
        "nasal discharge",
        ("runny nose", "nasal d/c", "snotty nose", "mucopurulent nasal discharge", "nasal disch"),
    ),
    "Water or fluid leakage from eyes,nose or mouth": (
        "ocular, nasal, or oral discharge",
        ("discharge from eyes, nose and mouth", "oculonasal d/c", "eyes and nose running"),
    ),
    "Water leakage from eyes": (
        "ocular discharge",
        ("watery eyes", "lacrimation", "eye discharge", "ocular d/c", "teary eyes"),
    ),
    "blisters on lips": (
        "labial vesicles",
        ("sores on lips", "scabs on lips", "lip ulcers", "blisters on lips", "crusty lips"),
    ),
    "Blisters In Mouth": (
        "oral vesicles",
        ("blisters in mouth", "mouth ulcers", "vesicles on tongue", "ulcers on gums and tongue"),
    ),
    "Blisters On Feet": (
        "foot vesicles",
        ("blisters on feet", "lesions between claws", "interdigital vesicles", "sores on hooves"),
    ),
    "Mouth Frothing": (
        "oral frothing",
        ("frothing at mouth", "foamy saliva", "froth from mouth", "frothy salivation"),
    ),
    "Sever cough": ("severe cough", ("severe cough", "bad cough", "harsh cough", "coughing a lot")),
    "Cough": ("cough", ("cough", "coughing", "mild cough", "occasional cough")),
    "Loose motions": (
        "diarrhea",
        ("diarrhoea", "loose motions", "loose dung", "scouring", "watery faeces", "diarrhea"),
    ),
    "Drop In Milk Production": (
        "decreased milk production",
        ("milk drop", "milk yield down", "dec. milk", "drop in milk", "less milk than usual"),
    ),
    "Milk In Semi Solid Form": (
        "abnormal milk consistency",
        ("clots in milk", "flakes in milk", "thick curdy milk", "watery milk with clots"),
    ),
    "Teat Gnarls": (
        "teat lesions",
        ("teat lesions", "hard lumps on teats", "sore teats", "cracked teats"),
    ),
    "Udder become swollen": (
        "udder edema",
        ("swollen udder", "udder oedema", "hard swollen quarter", "hot swollen udder"),
    ),
    "Difficulty In Breathing": (
        "respiratory distress",
        ("difficulty breathing", "dyspnoea", "laboured breathing", "resp distress"),
    ),
    "Breathing While Mouth Open": (
        "open-mouth breathing",
        ("open mouth breathing", "breathing with mouth open", "mouth breathing"),
    ),
    "Rapid breathing": ("tachypnea", ("rapid breathing", "tachypnoea", "fast breathing")),
    "Neck Swelling": (
        "cervical swelling",
        ("swollen neck", "neck swelling", "swelling of throat", "throat swelling"),
    ),
    "Swollen under jaw": (
        "submandibular swelling",
        ("swelling under the jaw", "submandibular oedema", "jaw swelling"),
    ),
    "Tongue Coming Out Of Mouth": (
        "protruding tongue",
        ("tongue protruding", "tongue hanging out", "tongue out of mouth"),
    ),
    "Air/crepitation feeling at surface of any body part": (
        "subcutaneous emphysema",
        ("crepitus on palpation", "crackling swelling", "gas under skin", "crepitant swelling"),
    ),
    "Color Change Of Muscles of limb": (
        "limb muscle discoloration",
        ("dark discoloured muscle on leg", "discolouration of thigh muscle", "black swollen leg"),
    ),
    "Sudden Death": (
        "acute mortality",
        ("sudden deaths in herd", "died suddenly", "2 animals found dead", "sudden death"),
    ),
    "Blood Leakage From Nose": (
        "epistaxis",
        ("bleeding from nose", "epistaxis", "blood from nostrils", "nose bleed"),
    ),
    "Stiffening of body": ("muscle rigidity", ("body stiff", "rigidity", "stiff muscles")),
    "Pain in stomach and screams": (
        "abdominal pain",
        ("colic", "abdominal pain", "kicking at belly", "bellowing with belly pain"),
    ),
    "Lameness": ("lameness", ("lame", "lameness", "limping", "reluctant to walk")),
    "Abortion": ("abortion", ("aborted", "abortion", "lost pregnancy", "aborted last week")),
    "Weakness": ("weakness", ("weak", "weakness", "dull and weak", "lethargic")),
    "Mites": ("mites", ("mites", "mange", "itching with mites")),
    "Hair fall": ("alopecia", ("hair loss", "alopecia", "patchy hair fall")),
    "Lesion on un-hairy parts of body": (
        "skin lesions on glabrous areas",
        ("pox lesions on hairless skin", "nodules on udder and lips", "papules on hairless areas"),
    ),
}

# Signs a vet adds to almost any case; one is added to ~10% of notes (DOMAIN: realism noise).
NONSPECIFIC_SIGNS = ("Weakness", "Fever", "Cough", "Loose motions")

# Distinguishing findings outside the source checklist (same shape as above).
SIGNS.update(
    {
        "Red urine": (
            "hemoglobinuria",
            ("red urine", "coffee coloured urine", "haemoglobinuria", "blood-red urine"),
        ),
        "Swollen lymph nodes": (
            "enlarged lymph nodes",
            ("swollen lymph nodes", "enlarged prescapular LN", "lymph glands swollen"),
        ),
        "Ticks on body": ("tick infestation", ("ticks on body", "heavy tick load", "ticks seen")),
        "Pale mucous membranes": (
            "pale mucous membranes",
            ("pale conjunctiva", "anaemic mucosa", "pale gums", "anaemia"),
        ),
        "Dog bite": (
            "history of dog bite",
            ("bitten by stray dog", "dog bite hx", "dog bite 3 wks ago", "bitten by a rabid dog"),
        ),
        "Aggression": (
            "aggressive behavior",
            ("aggressive, attacking people", "furious behaviour", "charging at people"),
        ),
        "Bottle jaw": (
            "bottle jaw",
            ("bottle jaw", "soft swelling under jaw", "intermandibular oedema"),
        ),
        "Weight loss": ("weight loss", ("weight loss", "emaciated", "losing condition")),
        "Chronic cough": (
            "chronic cough",
            ("cough for months", "chronic cough", "long standing cough"),
        ),
        "Retained placenta": (
            "retained placenta",
            ("retained placenta", "placenta not expelled", "RFM"),
        ),
        "Swollen joints": ("swollen joints", ("swollen knees", "hygroma", "swollen joints")),
        "Bleeding from orifices": (
            "bleeding from natural orifices",
            ("tarry blood from anus", "blood from all openings", "unclotted blood from nostrils"),
        ),
        "Foul smelling hoof": (
            "foul-smelling hoof lesion",
            ("foul smelling hoof", "interdigital pus", "rotten smell from foot"),
        ),
        "Pleuritic pain": (
            "painful breathing",
            ("grunting on expiration", "pleuritic pain", "extended neck, painful breathing"),
        ),
        "Skin nodules": (
            "skin nodules",
            ("nodules all over skin", "raised skin papules", "scabs on ears"),
        ),
        "Injury": ("history of injury", ("fell in a ditch", "hit by a cart", "injured leg")),
        "Pot belly": ("pot belly", ("pot belly", "rough coat, pot bellied", "worms in dung")),
        "Abscess": ("abscess", ("abscess", "pus from wound", "infected wound")),
        "Bloat": ("abdominal distension", ("left flank distended", "bloated", "drum-like belly")),
        "Sweet breath": ("sweet-smelling breath", ("sweet smell of breath", "acetone breath")),
        "Hot hooves": ("hot hooves", ("hot hooves", "standing with feet forward", "tender soles")),
        "Vaginal discharge": (
            "vaginal discharge",
            ("foul vaginal discharge", "pus from vulva", "vaginal d/c"),
        ),
        "Sneezing": ("sneezing", ("sneezing", "sneezes often")),
        "Jaundice": ("jaundice", ("jaundiced eyes", "icterus", "yellow mucosa")),
        "Convulsions": ("convulsions", ("convulsions", "fits", "circling and head pressing")),
    }
)
