from __future__ import annotations

from pathlib import Path

from sandboxd import schemas

DOCS = Path(__file__).resolve().parent.parent / "docs" / "schemas"


def test_published_schemas_match_the_models() -> None:
    """docs/schemas holds exactly what the models generate (run `sandboxd schemas` to refresh)."""
    generated = schemas.generate()
    published = {p.name: p.read_text(encoding="utf-8") for p in DOCS.glob("*.json")}
    assert published == generated
