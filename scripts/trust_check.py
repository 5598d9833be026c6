"""Spot-check a run on notes it never saw: 10 hand-written free-text notes (one per disease, with
the signs a vet would write) and 10 texts with no clinical content, in both decodings.

    python scripts/trust_check.py --run runs/tiny [--json]

Prints how many free-text notes get their disease and how many nonsense texts abstain. A spot
check to read beside `vetllm bench accuracy`, not a benchmark: ten notes are few.
"""

from __future__ import annotations

import argparse
import json

from vetllm.engine.predict import Predictor

FREE_TEXT = [
    ("3 yr old Teddy goat, temp 106F, crusty scabs on lips and muzzle, snotty nose, watery "
     "diarrhoea, coughing", "1679004"),
    ("Sahiwal cow drooling ropey saliva, blisters on tongue and between claws, limping, milk "
     "yield down", "3974005"),
    ("HF cross cow, one quarter hot and swollen, clots in milk, off feed", "72934000"),
    ("Nili ravi buffalo, sudden swelling of throat and brisket, breathing hard with mouth open, "
     "tongue protruding, T 107F", "198462004"),
    ("8 month calf, lame on hind leg, swelling on thigh crackles when pressed, high fever, died "
     "next day", "29600000"),
    ("Beetal doe, high fever, laboured breathing, painful chest, nasal discharge, coughing, herd "
     "of goats affected", "2260006"),
    ("cow found dead suddenly, blood oozing from nostrils and anus, carcass not stiff", "40214000"),
    ("buffalo passing coffee coloured urine, high temp, pale mucous membranes, tick infested",
     "24026003"),
    ("buffalo bitten by stray dog 3 weeks ago, now aggressive, bellowing, drooling, not drinking",
     "14146002"),
    ("sheep flock, bottle jaw, weak and thin, pale eyes, grazing wet marshy land", "4764006"),
]  # fmt: skip
NONSENSE = [
    "asdf qwer zxcv", "The quarterly sales report is due on Friday.",
    "lorem ipsum dolor sit amet consectetur", "Please reset my password", "12345 67890 !!!",
    "banana smoothie recipe with oats", "Hello, how are you today?", "kjhg poiu mnbv lkjh",
    "The football match ended two nil", "weather tomorrow sunny with light winds",
]  # fmt: skip


def check_run(run_dir: str) -> dict:
    """{decoding: {free_text_right, nonsense_abstained, first codes per free-text note}}."""
    predictor = Predictor.from_run(run_dir)
    result = {}
    for decoding in ("free", "constrained"):
        answers = [p.to_api_dict() for p in predictor.predict([n for n, _ in FREE_TEXT], decoding)]
        codes = [[c["code"] for c in a["codes"]] for a in answers]
        nonsense = predictor.predict(NONSENSE, decoding)
        result[decoding] = {
            "free_text_right": sum(
                gold in got for got, (_, gold) in zip(codes, FREE_TEXT, strict=True)
            ),
            "free_text_notes": len(FREE_TEXT),
            "nonsense_abstained": sum(p.abstained for p in nonsense),
            "nonsense_notes": len(NONSENSE),
            "codes": codes,
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a completed run folder")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    args = parser.parse_args()
    result = check_run(args.run)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for decoding, row in result.items():
        print(
            f"{decoding}: free text {row['free_text_right']} of {row['free_text_notes']} right; "
            f"nonsense {row['nonsense_abstained']} of {row['nonsense_notes']} abstained"
        )


if __name__ == "__main__":
    main()
