"""Generate realistic customer-order e-mails that mention products from the referential.

Products are written the way customers write them: the full name, a synonym or the bare model,
in lower case, upper case or as listed. Seeded, so every run writes the same file.

    python examples/product-ner/generate.py [--count 1000] [--seed 0] [--out data/emails.jsonl]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
REFERENTIAL = HERE.parent.parent / "rules" / "product-ner" / "products.csv"

GREETINGS = ["Hello,", "Hi team,", "Good morning,", "Dear sales team,", "Hi,", "Bonjour,"]
ASKS = ["Could you send us {q} {p}?", "We need {q} {p} for the new office.",
        "Please quote {q} {p}.", "I'd like to order {q} {p}, {c} if possible.",
        "Do you still have the {p} in stock? We would take {q}.",
        "Can you add {q} {p} to our order {o}?", "Our {p} broke, please ship a replacement.",
        "Is the {p} compatible with the {p2}?", "Reorder: {q} {p} ({c}).",
        "We are comparing the {p} and the {p2}, which one would you recommend?"]
CLOSINGS = ["Budget is around {a}.", "Our PO reference is {o}.", "Invoice to Accounts Payable please.",
            "Delivery to the IT Department, 3rd floor.", "Thanks!", "Urgent, we need it by Friday.",
            "Total should not exceed {a}.", "Please confirm the price ({a} last time)."]
SIGNATURES = ["Best regards,\nAnna", "Thanks,\nMarc", "Cheers,\nLi", "Kind regards,\nSofia Rossi",
              "--\nJ. Dupont, Procurement"]
COLOURS = ["black", "white", "silver", "space-grey", "blue"]


def spellings(row: dict[str, str]) -> list[str]:
    return [row["term"], row["canonical"]] + [s for s in row["synonyms"].split("|") if s]


def mention(rng: random.Random, products: list[dict[str, str]]) -> str:
    name = rng.choice(spellings(rng.choice(products)))
    style = rng.random()
    if style < 0.25:
        return name.lower()
    if style < 0.32:
        return name.upper()
    return name


def quantity(rng: random.Random) -> str:
    n = rng.choice([1, 2, 3, 4, 5, 10, 12, 20, 50])
    return rng.choice([str(n), f"{n} x", f"{n} pcs", f"{n}x", f"{n} boxes of", f"{n} units of"])


def amount(rng: random.Random) -> str:
    value = rng.choice([49, 129, 399, 1299, 2450, 89.9, 15999])
    text = f"{value:,.2f}"
    return rng.choice([f"€{text}", f"${text}", f"{text} EUR", f"£{text}"])


def email(rng: random.Random, products: list[dict[str, str]]) -> str:
    order = f"ORD-{rng.randint(100000, 999999)}"
    lines = [rng.choice(GREETINGS), ""]
    for _ in range(rng.randint(1, 3)):
        lines.append(rng.choice(ASKS).format(q=quantity(rng), p=mention(rng, products),
                                             p2=mention(rng, products), c=rng.choice(COLOURS), o=order))
    lines.append(rng.choice(CLOSINGS).format(a=amount(rng), o=order))
    lines += ["", rng.choice(SIGNATURES)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "data" / "emails.jsonl")
    args = parser.parse_args()
    with REFERENTIAL.open(encoding="utf-8", newline="") as f:
        products = list(csv.DictReader(f))
    rng = random.Random(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as f:
        for i in range(args.count):
            record = {"id": f"mail-{i:06d}", "text": email(rng, products)}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"wrote {args.count} e-mails to {args.out}")


if __name__ == "__main__":
    main()
