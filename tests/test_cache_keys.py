"""Key construction: no input can make two requests share a key or reach another tenant."""

import pytest


@pytest.fixture(scope="module")
def keys(services):
    from mcp_integrator_services import keys

    return keys


def test_key_follows_the_design_structure(keys):
    key = keys.build_key("prod", 1, "business_rules", "rule", 123, "details")
    assert key == "prod:account_1:business_rules:rule:123:details"


@pytest.mark.parametrize(
    ("part", "value"),
    [
        ("namespace", "prod:account_2"),
        ("namespace", ""),
        ("module", "rules:x"),
        ("module", "Rules"),
        ("module", "rules x"),
        ("resource_type", "rule\n"),
        ("resource_type", "régua"),
        ("action", "a" * 65),
        ("action", None),
    ],
)
def test_identifier_parts_that_could_collide_are_refused(keys, part, value):
    parts = {
        "namespace": "prod",
        "account_id": 1,
        "module": "rules",
        "resource_type": "rule",
        "resource_id": 1,
        "action": "details",
    }
    parts[part] = value
    with pytest.raises(keys.InvalidKeyPart):
        keys.build_key(**parts)


@pytest.mark.parametrize("account_id", ["1", 0, -3, True, 1.0, None, "1:prod"])
def test_account_id_must_be_a_positive_integer(keys, account_id):
    with pytest.raises(keys.InvalidKeyPart, match="account id"):
        keys.build_key("prod", account_id, "rules", "rule", 1, "details")


TRICKY_IDS = [
    1,
    "1",
    "a:b",
    "a",
    "b:details",
    "x:account_2:rules",
    " 1",
    "1 ",
    "São Paulo",
    "Sao Paulo",
    "~",
    None,
    "h~abc",
    {"b": 1, "a": 2},
    ["a", "b"],
    "a" * 64,
    "a" * 65,
    "",
]


def test_tricky_resource_ids_never_share_keys_or_leave_their_tenant(keys):
    built = {}
    for resource_id in TRICKY_IDS:
        key = keys.build_key("prod", 1, "rules", "rule", resource_id, "details")
        segments = key.split(":")
        assert len(segments) == 6, key
        assert segments[:4] == ["prod", "account_1", "rules", "rule"]
        assert segments[5] == "details"
        built.setdefault(key, []).append(resource_id)
    # the only ids sharing a key are the int 1 and the string "1" (same resource, two spellings)
    shared = [ids for ids in built.values() if len(ids) > 1]
    assert shared == [[1, "1"]]


def test_structured_ids_are_canonical(keys):
    first = keys.build_key("prod", 1, "tools", "search", {"q": "a", "limit": 5}, "call")
    second = keys.build_key("prod", 1, "tools", "search", {"limit": 5, "q": "a"}, "call")
    other = keys.build_key("prod", 1, "tools", "search", {"limit": 6, "q": "a"}, "call")
    assert first == second != other


def test_readable_ids_cannot_impersonate_hashed_ones(keys):
    hashed = keys.resource_part("a:b")
    assert hashed.startswith("h~")
    assert keys.resource_part(hashed) != hashed
