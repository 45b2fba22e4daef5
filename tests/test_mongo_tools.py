"""The MongoDB tool set: names, filters, tools and errors, on mongomock and on real pymongo.

No MongoDB server can run here, so the tools run on ``mongomock.MongoClient`` (the only test
double); the unavailable-server path uses a real ``pymongo.MongoClient`` on a closed port.
"""

import datetime
import importlib
import json
import os
import subprocess
import sys
import uuid

import mongomock
import pymongo
import pytest
from bson import Decimal128, ObjectId
from conftest import load_services

SECRET = "S3cr3t-Pa55"
URI = f"mongodb://svc_odoo:{SECRET}@mongo.internal:27017/?authSource=admin"
BEHAVIOUR = {
    "tenant": "acme",
    "name": "ACME Ltda",
    "account_id": 1,
    "tone": "friendly",
    "personality": "Helpful, brief.",
    "language": "pt_BR",
    "tz": "America/Sao_Paulo",
    "hours": {"mon": ["08:00-12:00", "13:00-18:00"], "sun": []},
    "holidays": [{"date": "--12-25", "name": "Natal", "yearly": True}],
    "services": ["delivery", "repair"],
    "business_rules": "Never promise delivery dates.",
    "open_now": False,
}


@pytest.fixture(scope="module")
def mongo():
    load_services("mcp_connectors")
    return importlib.import_module("mcp_connectors_services.mongo_tools")


def test_importing_the_module_loads_no_driver():
    """The models import mongo_tools at start-up; pymongo loads on the first MongoDB call."""
    code = (
        "import sys; from conftest import load_services; load_services('mcp_connectors'); "
        "import mcp_connectors_services.builtin_config; "
        "print(sorted({'pymongo', 'bson'} & set(sys.modules)))"
    )
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    loaded = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tests_dir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"


@pytest.fixture
def settings(mongo):
    """Settings of a database of its own per test (mongomock keeps one store per client)."""
    yield mongo.MongoSettings(uri=URI, database=f"test_{uuid.uuid4().hex[:12]}")
    mongo.close_clients()


@pytest.fixture
def db(mongo, settings):
    """The database the tools use, to seed data directly."""
    return mongo.shared_client(settings, mongomock.MongoClient)[settings.database]


@pytest.fixture
def tools(mongo, settings, db):
    return mongo.MongoTools(settings, client_factory=mongomock.MongoClient)


@pytest.fixture
def products(db):
    """Account 1 and account 2 both have ``products`` (and account 1 a non-listed ``secrets``)."""
    db["t1_products"].insert_many(
        [
            {
                "sku": f"P{index:03d}",
                "name": f"Produto {index}",
                "price": float(index),
                "tags": ["red", "big"][: index % 3],
                "variants": [{"size": index % 4, "stock": index}],
                "owner": "account-1",
            }
            for index in range(150)
        ]
    )
    db["t2_products"].insert_many(
        [{"sku": f"Q{index:03d}", "owner": "account-2", "price": 1.0} for index in range(5)]
    )
    db["t1_secrets"].insert_one({"owner": "account-1", "token": "do-not-read"})
    db["t1_t2_products"].insert_one({"owner": "account-1", "note": "own collection"})
    return ["products"]


# Settings, redaction, clients --------------------------------------------------------------


def test_settings_repr_and_redaction_hide_the_password(mongo, settings):
    assert SECRET not in repr(settings)
    assert "svc_odoo:***@mongo.internal" in repr(settings)
    assert settings.scrub(f"failed for {URI}") == f"failed for {settings.redacted_uri}"
    encoded = "mongodb://u:p%40ss%3Aword@h/?tlsCertificateKeyFilePassword=keypw&w=1"
    redacted = mongo.redact_uri(encoded)
    assert redacted == "mongodb://u:***@h/?tlsCertificateKeyFilePassword=***&w=1"
    settings2 = mongo.MongoSettings(uri=encoded, database="x")
    assert settings2.scrub("auth p@ss:word / p%40ss%3Aword / keypw") == "auth *** / *** / ***"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"uri": "http://svc:pw@h/"}, "must start with mongodb://"),
        ({"uri": None}, "must start with mongodb://"),
        ({"database": "a.b"}, "database name"),
        ({"database": ""}, "database name"),
        ({"timeout_ms": 0}, "timeout"),
        ({"timeout_ms": 2.5}, "timeout"),
        ({"max_pool_size": 0}, "pool size"),
        ({"max_pool_size": True}, "pool size"),
    ],
)
def test_invalid_settings_are_refused(mongo, changes, message):
    values = {"uri": URI, "database": "odoo", **changes}
    with pytest.raises(mongo.MongoConfigError, match=message) as caught:
        mongo.MongoSettings(**values)
    assert SECRET not in str(caught.value)


def test_real_pymongo_client_is_pooled_with_every_timeout(mongo, closed_port):
    settings = mongo.MongoSettings(
        uri=f"mongodb://svc:{SECRET}@127.0.0.1:{closed_port}/",
        database="odoo",
        timeout_ms=1500,
        max_pool_size=7,
    )
    try:
        client = mongo.shared_client(settings)
        assert isinstance(client, pymongo.MongoClient)
        assert mongo.shared_client(settings) is client
        options = client.options
        assert options.server_selection_timeout == 1.5
        assert options.pool_options.connect_timeout == 1.5
        assert options.pool_options.socket_timeout == 1.5
        assert options.pool_options.max_pool_size == 7
        other = mongo.MongoSettings(uri=settings.uri, database="odoo", timeout_ms=1000)
        assert mongo.shared_client(other) is not client
    finally:
        mongo.close_clients()


def test_client_is_created_again_after_fork(mongo, settings):
    client = mongo.shared_client(settings, mongomock.MongoClient)
    assert mongo.shared_client(settings, mongomock.MongoClient) is client
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether it got a client of its own
        try:
            fresh = mongo.shared_client(settings, mongomock.MongoClient) is not client
            os.write(write_end, b"fresh" if fresh else b"reused")
        finally:
            os._exit(0)
    os.close(write_end)
    answer = os.read(read_end, 16)
    os.close(read_end)
    os.waitpid(pid, 0)
    assert answer == b"fresh"
    assert mongo.shared_client(settings, mongomock.MongoClient) is client


def test_unreachable_server_is_unavailable_without_credentials(mongo, closed_port):
    uri = f"mongodb://svc_odoo:{SECRET}@127.0.0.1:{closed_port}/?authSource=admin"
    settings = mongo.MongoSettings(uri=uri, database="odoo", timeout_ms=150)
    tools = mongo.MongoTools(settings)  # the default, real pymongo client
    try:
        for call in (
            lambda: tools.get_behaviour(1),
            lambda: tools.get_config(1, "greeting"),
            lambda: tools.find(1, "products", {}, allowed_collections=["products"]),
            lambda: tools.put_behaviour(1, dict(BEHAVIOUR)),
        ):
            with pytest.raises(mongo.MongoUnavailable) as caught:
                call()
            message = str(caught.value)
            assert SECRET not in message
            assert "svc_odoo:***@127.0.0.1" in message
            assert "unavailable" in message
            assert caught.value.__cause__ is None and caught.value.__suppress_context__
    finally:
        mongo.close_clients()


@pytest.mark.parametrize(
    "uri",
    [
        f"mongodb://svc:{SECRET}@host:notaport/",
        f"mongodb://svc:{SECRET}@/odoo",
    ],
)
def test_malformed_uri_is_a_config_error_without_credentials(mongo, uri):
    tools = mongo.MongoTools(mongo.MongoSettings(uri=uri, database="odoo"))
    with pytest.raises(mongo.MongoConfigError) as caught:
        tools.get_behaviour(1)
    assert SECRET not in str(caught.value)
    assert "svc:***@" in str(caught.value)


# Names and tenant isolation ----------------------------------------------------------------


def test_collection_names_are_per_tenant(mongo):
    assert mongo.tenant_collection_name(1, "config") == "t1_config"
    assert mongo.tenant_collection_name(12, "behaviour") == "t12_behaviour"
    assert mongo.tenant_collection_name(1, "products") != mongo.tenant_collection_name(
        11, "products"
    )


@pytest.mark.parametrize(
    "purpose",
    [
        "1_products",  # would read as t1_1_products vs t11_products
        "t2_products.x",
        "../t2_products",
        "products.t2",
        "$products",
        "system.users",
        "system_profile",
        "Products",
        "products\x00",
        "pro ducts",
        "",
        "a" * 65,
        None,
        42,
    ],
)
def test_invalid_collection_names_are_refused(mongo, tools, products, purpose):
    with pytest.raises(mongo.MongoRefused, match="Invalid collection name"):
        mongo.tenant_collection_name(1, purpose)
    with pytest.raises(mongo.MongoRefused):
        tools.find(1, purpose, {}, allowed_collections=products)


@pytest.mark.parametrize("account_id", [0, -1, True, "1", 1.0, None, 2**60])
def test_invalid_account_ids_are_refused(mongo, tools, products, account_id):
    with pytest.raises(mongo.MongoRefused, match="account id"):
        tools.find(account_id, "products", {}, allowed_collections=products)
    with pytest.raises(mongo.MongoRefused, match="account id"):
        tools.get_behaviour(account_id)


def test_a_tenant_only_reads_its_own_collections(mongo, tools, products):
    own = tools.find(1, "products", {}, limit=100, allowed_collections=products)
    assert {doc["owner"] for doc in own["documents"]} == {"account-1"}
    other = tools.find(2, "products", {}, allowed_collections=products)
    assert {doc["owner"] for doc in other["documents"]} == {"account-2"}
    # Even an allow-list naming another tenant's full name stays inside the caller's prefix.
    tricked = tools.find(1, "t2_products", {}, allowed_collections=["t2_products"])
    assert [doc["note"] for doc in tricked["documents"]] == ["own collection"]
    # Filters cannot widen the scope either.
    widened = tools.find(1, "products", {"owner": "account-2"}, allowed_collections=products)
    assert widened["documents"] == []


def test_collections_must_be_allow_listed(mongo, tools, products):
    with pytest.raises(mongo.MongoRefused, match="not allow-listed"):
        tools.find(1, "secrets", {}, allowed_collections=products)
    with pytest.raises(mongo.MongoRefused, match="not allow-listed"):
        tools.find(1, "products", {})
    with pytest.raises(mongo.MongoConfigError, match="list of names"):
        tools.find(1, "products", {}, allowed_collections="products")
    with pytest.raises(mongo.MongoConfigError, match="Allowed collections"):
        tools.find(1, "products", {}, allowed_collections=["products", "system.users"])


# Behaviour and configuration ---------------------------------------------------------------


def test_behaviour_round_trip(mongo, tools):
    assert tools.get_behaviour(1) is None
    published = tools.put_behaviour(1, dict(BEHAVIOUR))
    assert published["account_id"] == 1
    behaviour = tools.get_behaviour(1)
    assert behaviour.pop("published_at") == published["published_at"]
    assert behaviour == BEHAVIOUR
    assert tools.get_behaviour(2) is None
    changed = {**BEHAVIOUR, "tone": "formal"}
    tools.put_behaviour(1, changed)
    assert tools.get_behaviour(1)["tone"] == "formal"
    json.dumps(tools.get_behaviour(1))


@pytest.mark.parametrize(
    "document, message",
    [
        ([], "must be an object"),
        ({key: BEHAVIOUR[key] for key in BEHAVIOUR if key != "tone"}, "no 'tone'"),
        ({**BEHAVIOUR, "hours": ["mon 8-18"]}, "'hours' must be a dict"),
        ({**BEHAVIOUR, "services": "delivery"}, "'services' must be a list"),
        ({**BEHAVIOUR, "business_rules": None}, "'business_rules' must be a str"),
        ({**BEHAVIOUR, "$where": "1"}, "invalid key"),
        ({**BEHAVIOUR, "hours": {"mon.tue": []}}, "invalid key"),
        ({**BEHAVIOUR, "extra": {1, 2}}, "only JSON data"),
        ({**BEHAVIOUR, "extra": float("nan")}, "non-finite"),
        ({**BEHAVIOUR, "extra": "x" * (300 * 1024)}, "too large"),
        ({**BEHAVIOUR, "account_id": 2}, "another account"),
    ],
)
def test_bad_behaviour_is_refused_and_nothing_written(mongo, tools, document, message):
    tools.put_behaviour(1, dict(BEHAVIOUR))
    with pytest.raises(mongo.MongoRefused, match=message):
        tools.put_behaviour(1, document)
    assert tools.get_behaviour(1)["tone"] == BEHAVIOUR["tone"]


def test_malformed_stored_behaviour_is_a_clear_error(mongo, tools, db):
    db["t1_behaviour"].insert_one({"_id": "behaviour", "document": "not an object"})
    with pytest.raises(mongo.MongoToolError, match="malformed; publish it again"):
        tools.get_behaviour(1)


def test_config_round_trip(mongo, tools):
    assert tools.get_config(1, "greeting") is None
    tools.put_config(1, "greeting", {"pt_BR": "Olá!", "en_US": "Hello!"})
    assert tools.get_config(1, "greeting") == {
        "key": "greeting",
        "value": {"pt_BR": "Olá!", "en_US": "Hello!"},
    }
    assert tools.get_config(2, "greeting") is None
    for key in ("", "a b", "$where", None, "k" * 129):
        with pytest.raises(mongo.MongoRefused, match="configuration key"):
            tools.get_config(1, key)
    with pytest.raises(mongo.MongoRefused, match="invalid key"):
        tools.put_config(1, "rules", {"$set": 1})


# find: filters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, expected",
    [
        ({}, 150),
        (None, 150),
        ({"sku": "P007"}, 1),
        ({"sku": {"$eq": "P007"}}, 1),
        ({"price": {"$ne": 3.0}}, 149),
        ({"price": {"$gt": 140}}, 9),
        ({"price": {"$gte": 140, "$lt": 145}}, 5),
        ({"price": {"$lte": 1}}, 2),
        ({"sku": {"$in": ["P001", "P002", "Z"]}}, 2),
        ({"sku": {"$nin": ["P001", "P002"]}}, 148),
        ({"$and": [{"price": {"$gte": 10}}, {"price": {"$lt": 20}}]}, 10),
        ({"$or": [{"sku": "P001"}, {"sku": "P002"}]}, 2),
        ({"$nor": [{"price": {"$lt": 100}}]}, 50),
        ({"price": {"$not": {"$lt": 100}}}, 50),
        ({"tags": {"$exists": True}}, 150),
        ({"missing": {"$exists": False}}, 150),
        ({"sku": {"$type": "string"}}, 150),
        ({"sku": {"$regex": "^p00", "$options": "i"}}, 10),
        ({"sku": {"$regex": "^P(001|002)$|^(P1)?49$"}}, 3),
        ({"tags": {"$size": 2}}, 50),
        ({"tags": {"$all": ["red", "big"]}}, 50),
        ({"variants": {"$elemMatch": {"size": 3, "stock": {"$gte": 100}}}}, 12),
        ({"tags": {"$elemMatch": {"$eq": "big"}}}, 50),
        ({"variants.size": 0}, 38),
    ],
)
def test_allowed_operators(mongo, tools, products, query, expected):
    assert mongo.validate_filter(query) == (query or {})
    result = tools.find(1, "products", query, limit=100, allowed_collections=products)
    assert len(result["documents"]) == min(expected, 100)
    assert result["truncated"] is (expected > 100)


@pytest.mark.parametrize(
    "query, message",
    [
        ({"$where": "sleep(1000)"}, "'\\$where' is not allowed"),
        ({"$expr": {"$eq": ["$a", "$b"]}}, "'\\$expr' is not allowed"),
        ({"$expr": {"$function": {"body": "x", "args": [], "lang": "js"}}}, "\\$expr"),
        ({"$jsonSchema": {"required": ["a"]}}, "\\$jsonSchema"),
        ({"$text": {"$search": "x"}}, "\\$text"),
        ({"$comment": "x"}, "\\$comment"),
        ({"$lookup": {"from": "t2_products"}}, "\\$lookup"),
        ({"sku": {"$where": "1"}}, "\\$where"),
        ({"sku": {"$function": {"body": "x"}}}, "\\$function"),
        ({"sku": {"$accumulator": {"init": "x"}}}, "\\$accumulator"),
        ({"price": {"$mod": [2, 0]}}, "\\$mod"),
        ({"sku": {"$eq": {"$where": "1"}}}, "inside a value"),
        ({"sku": {"$in": [{"$expr": 1}]}}, "inside a value"),
        ({"variants": {"$elemMatch": {"$where": "1"}}}, "\\$where"),
        ({"price": {"$not": {"$where": "1"}}}, "\\$where"),
        ({"$and": [{"sku": "P001"}, {"$where": "1"}]}, "\\$where"),
        ({"$or": [{"sku": {"$function": {}}}]}, "\\$function"),
        ({"$and": []}, "non-empty list"),
        ({"$or": {"sku": "P001"}}, "non-empty list"),
        ({"$nor": ["x"]}, "list of filter objects"),
        ({"sku": {"$eq": "P001", "name": "x"}}, "mixes operators"),
        ({"sku": {"$regex": "(a+)+$"}}, "nested quantifiers"),
        ({"sku": {"$regex": "(x*)*y"}}, "nested quantifiers"),
        ({"sku": {"$regex": "(a|aa){2,}"}}, "repeated alternations"),
        ({"sku": {"$regex": "((a|b))+"}}, "repeated alternations"),
        ({"sku": {"$regex": "(a)\\1"}}, "back-references"),
        ({"sku": {"$regex": "a" * 201}}, "at most 200"),
        ({"sku": {"$regex": 5}}, "\\$regex takes a string"),
        ({"sku": {"$regex": "a", "$options": "e"}}, "\\$options takes only"),
        ({"sku": {"$options": "i"}}, "only allowed next to \\$regex"),
        ({"sku": {"$type": ["string", "int"]}}, "\\$type takes one of"),
        ({"sku": {"$type": "javascript"}}, "\\$type takes one of"),
        ({"tags": {"$size": -1}}, "non-negative"),
        ({"tags": {"$size": "2"}}, "non-negative"),
        ({"tags": {"$exists": "yes"}}, "true or false"),
        ({"tags": {"$in": "red"}}, "takes a list"),
        ({"tags": {"$in": list(range(101))}}, "at most 100 values"),
        ({"tags": {"$not": "red"}}, "object of operators"),
        ({"variants": {"$elemMatch": []}}, "non-empty object"),
        ({"price": float("inf")}, "finite"),
        ({"sku": b"P001"}, "bytes"),
        ({"": 1}, "Invalid field name"),
        ({"a..b": 1}, "Invalid field name"),
        ({"a\x00": 1}, "Invalid field name"),
        ({"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}}, "nested too deeply"),
        ({f"f{index}": index for index in range(201)}, "too large"),
        ("sku == 1", "must be an object"),
        ([{"sku": "P001"}], "must be an object"),
    ],
)
def test_refused_filters(mongo, tools, products, query, message):
    with pytest.raises(mongo.MongoRefused, match=message):
        tools.find(1, "products", query, allowed_collections=products)


def test_every_unknown_operator_is_refused(mongo):
    for operator in ("$where", "$function", "$accumulator", "$expr", "$jsonSchema", "$foo"):
        assert operator not in mongo.FILTER_OPERATORS
        with pytest.raises(mongo.MongoRefused, match="is not allowed"):
            mongo.validate_filter({operator: {}})
        with pytest.raises(mongo.MongoRefused, match="is not allowed"):
            mongo.validate_filter({"field": {operator: {}}})


# find: limit, projection, sort, JSON -------------------------------------------------------


@pytest.mark.parametrize(
    "limit, returned, truncated",
    [(None, 20, True), (5, 5, True), (0, 1, True), (-5, 1, True), (1000, 100, True)],
)
def test_limit_is_clamped(mongo, tools, products, limit, returned, truncated):
    result = tools.find(1, "products", {}, limit=limit, allowed_collections=products)
    assert len(result["documents"]) == returned == result["limit"]
    assert result["truncated"] is truncated
    small = tools.find(2, "products", {}, limit=limit, allowed_collections=products)
    assert small["truncated"] is (returned < 5)


@pytest.mark.parametrize("limit", ["10", 2.5, True])
def test_non_integer_limit_is_refused(mongo, tools, products, limit):
    with pytest.raises(mongo.MongoRefused, match="limit must be an integer"):
        tools.find(1, "products", {}, limit=limit, allowed_collections=products)


def test_projection(mongo, tools, products):
    def first(projection):
        return tools.find(1, "products", {"sku": "P004"}, projection, allowed_collections=products)[
            "documents"
        ][0]

    assert set(first({"sku": 1, "price": True})) == {"_id", "sku", "price"}
    assert set(first(["sku", "name"])) == {"_id", "sku", "name"}
    assert set(first({"sku": 1, "_id": 0})) == {"sku"}
    assert "variants" not in first({"variants": 0, "tags": False})
    assert set(first({"variants.size": 1, "_id": 0})) == {"variants"}


@pytest.mark.parametrize(
    "projection, message",
    [
        ({"sku": 1, "price": 0}, "both include and exclude"),
        ({"tags": {"$slice": 1}}, "must be 0 or 1"),
        ({"tags": 2}, "must be 0 or 1"),
        ({"$where": 1}, "Invalid projection field"),
        ({}, "non-empty"),
        ("sku", "non-empty"),
        ({f"f{index}": 1 for index in range(51)}, "at most 50"),
    ],
)
def test_bad_projection_is_refused(mongo, tools, products, projection, message):
    with pytest.raises(mongo.MongoRefused, match=message):
        tools.find(1, "products", {}, projection, allowed_collections=products)


def test_sort(mongo, tools, products):
    descending = tools.find(
        1, "products", {}, limit=3, sort=[["price", -1]], allowed_collections=products
    )
    assert [doc["sku"] for doc in descending["documents"]] == ["P149", "P148", "P147"]
    ascending = tools.find(
        1, "products", {}, limit=2, sort={"price": 1}, allowed_collections=products
    )
    assert [doc["sku"] for doc in ascending["documents"]] == ["P000", "P001"]
    for bad in ([["price", 2]], [["$natural", 1]], [["price"]], [], "price", [["a", 1]] * 6):
        with pytest.raises(mongo.MongoRefused):
            tools.find(1, "products", {}, sort=bad, allowed_collections=products)


def test_results_are_json(mongo, tools, db):
    object_id = ObjectId()
    db["t1_orders"].insert_many(
        [
            {
                "_id": object_id,
                "at": datetime.datetime(2024, 5, 1, 12, 30),
                "blob": b"\x00\x01\x02",
                "total": Decimal128("10.50"),
                "refs": [ObjectId("65f000000000000000000000")],
                "nested": {"when": datetime.datetime(2024, 1, 2)},
            },
            {"_id": 7, "at": None},
        ]
    )
    result = tools.find(1, "orders", {}, sort=[["at", -1]], allowed_collections=["orders"])
    json.dumps(result)
    first, second = result["documents"]
    assert first == {
        "_id": str(object_id),
        "at": "2024-05-01T12:30:00+00:00",
        "blob": "<3 bytes>",
        "total": "10.50",
        "refs": ["65f000000000000000000000"],
        "nested": {"when": "2024-01-02T00:00:00+00:00"},
    }
    assert second == {"_id": "7", "at": None}
    assert mongo.to_json(float("nan")) == "nan"


# Tool descriptors and dispatch -------------------------------------------------------------


def test_tool_descriptors(mongo):
    protocol = importlib.import_module("mcp_connectors_services.mcp_server_protocol")
    descriptors = {tool["name"]: tool for tool in mongo.tool_descriptors(["products", "faq"])}
    assert set(descriptors) == {"mongo_get_behaviour", "mongo_get_config", "mongo_find"}
    for tool in descriptors.values():
        assert tool["description"]
        assert tool["annotations"] == {
            "read_only": True,
            "destructive": False,
            "idempotent": True,
            "open_world": False,
        }
        # The tenant comes from the caller's context, never from the model.
        assert "account_id" not in json.dumps(tool["input_schema"])
    find_schema = descriptors["mongo_find"]["input_schema"]
    assert find_schema["properties"]["collection"]["enum"] == ["faq", "products"]
    good = {
        "collection": "products",
        "filter": {"price": {"$gt": 1}},
        "projection": ["sku"],
        "limit": 5,
        "sort": [["price", -1]],
    }
    assert protocol.validate_arguments(find_schema, good) == []
    assert protocol.validate_arguments(find_schema, {**good, "collection": "secrets"})
    assert protocol.validate_arguments(find_schema, {**good, "limit": 1000})
    assert protocol.validate_arguments(find_schema, {**good, "account_id": 2})
    config_schema = descriptors["mongo_get_config"]["input_schema"]
    assert protocol.validate_arguments(config_schema, {"key": "greeting"}) == []
    assert protocol.validate_arguments(config_schema, {})
    assert "enum" not in mongo.tool_descriptors()[2]["input_schema"]["properties"]["collection"]


def test_call_tool_dispatches_each_descriptor(mongo, tools, products):
    tools.put_behaviour(1, dict(BEHAVIOUR))
    tools.put_config(1, "greeting", "Olá!")
    behaviour = tools.call_tool(1, "mongo_get_behaviour", {}, allowed_collections=products)
    assert behaviour["tone"] == "friendly"
    config = tools.call_tool(1, "mongo_get_config", {"key": "greeting"})
    assert config == {"key": "greeting", "value": "Olá!"}
    found = tools.call_tool(
        1,
        "mongo_find",
        {"collection": "products", "filter": {"sku": "P001"}, "projection": ["sku"]},
        allowed_collections=products,
    )
    assert [doc["sku"] for doc in found["documents"]] == ["P001"]
    with pytest.raises(mongo.MongoRefused, match="Unknown MongoDB tool"):
        tools.call_tool(1, "mongo_drop", {})
    with pytest.raises(mongo.MongoRefused, match="not allow-listed"):
        tools.call_tool(1, "mongo_find", {"collection": "secrets"}, allowed_collections=products)
    with pytest.raises(mongo.MongoRefused, match="must be an object"):
        tools.call_tool(1, "mongo_find", ["products"])
