# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The built-in Qdrant and MongoDB servers.

Qdrant runs for real in qdrant-client's embedded mode, in temporary directories, with the
offline MiniLM embedder; MongoDB is mongomock behind the MongoDB tools' ``client_factory``
(no MongoDB server can run here), except where real pymongo must fail against a closed port.
"""

import json
import os
import shutil
import socket
import tempfile
import time
import uuid
from unittest.mock import patch

import mongomock

from odoo.exceptions import ValidationError
from odoo.tests import tagged
from odoo.tools import config, mute_logger

from odoo.addons.mcp_integrator.models.mcp_integrator import McpToolError
from odoo.addons.mcp_integrator.tests.test_integrator_api import ACCOUNT_IDS
from odoo.addons.queue_job.exception import RetryableJobError
from odoo.addons.queue_job.tests.common import trap_jobs

from ..models import mcp_server_mongodb
from ..services import mongo_tools
from ..services.process_pool import shared_pool
from .common import McpConnectorsCase

TOOL_LOGGERS = ("odoo.addons.mcp_integrator.models.mcp_integrator",)
#: name, internal reference, category, sales description, price
CATALOG = [
    (
        "Camiseta Básica Preta",
        "CAM-PRETA",
        "Camisetas",
        "Camiseta de algodão na cor preta, gola redonda",
        49.9,
    ),
    (
        "Tênis de Corrida Leve",
        "TEN-CORRIDA",
        "Calçados",
        "Tênis esportivo para corrida com amortecimento",
        299.0,
    ),
    (
        "Cafeteira Elétrica 30 Xícaras",
        "CAF-30",
        "Eletroportáteis",
        "Cafeteira elétrica com jarra de vidro",
        189.0,
    ),
    ("Garrafa Térmica Inox 1L", "GAR-1L", "Utilidades", "Mantém o café quente por 12 horas", 89.9),
]
RULES = """Frete grátis para compras acima de R$ 200.

- Trocas e devoluções em até 7 dias após o recebimento.
- Pagamento no Pix com 5% de desconto."""
MONGO_PASSWORD = "mongo-pw-7f3a9c"


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@tagged("post_install", "-at_install")
class TestQdrantServer(McpConnectorsCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.directory = tempfile.mkdtemp(prefix="mcp_qdrant_test_")
        cls.addClassCleanup(shutil.rmtree, cls.directory, ignore_errors=True)
        cls.company_b = cls.env["res.company"].create({"name": f"Loja B {uuid.uuid4().hex[:6]}"})
        cls.tenant_b = cls.make_tenant("Loja B", company_id=cls.company_b.id)
        cls.categories = {
            name: cls.env["product.category"].create({"name": name})
            for name in {row[2] for row in CATALOG}
        }
        # the same catalogue in both companies: the names never tell the tenants apart
        cls.products = cls.make_catalog(cls.tenant.company_id)
        cls.products_b = cls.make_catalog(cls.company_b)
        cls.server = cls.make_server(code="catalog", kind="qdrant")
        cls.server_b = cls.make_server(tenant=cls.tenant_b, code="catalog", kind="qdrant")
        for server in cls.server | cls.server_b:
            server.action_discover()
            cls.addClassCleanup(shared_pool().discard, server._builtin_pool_key())

    @classmethod
    def make_catalog(cls, company):
        templates = cls.env["product.template"].create(
            [
                {
                    "name": name,
                    "default_code": code,
                    "categ_id": cls.categories[category].id,
                    "description_sale": description,
                    "list_price": price,
                    "company_id": company.id,
                }
                for name, code, category, description, price in CATALOG
            ]
        )
        return templates.product_variant_ids

    def setUp(self):
        super().setUp()
        # Qdrant is not rolled back with the test: empty directories of its own per test
        run = uuid.uuid4().hex[:8]
        for server in self.server | self.server_b:
            server.qdrant_path = os.path.join(self.directory, run, server.tenant_id.code)

    def index(self, server, purpose="products"):
        with trap_jobs() as trap:
            run = self.env["mcp.index.run"]._enqueue(server, purpose)
            trap.perform_enqueued_jobs()
        run.invalidate_recordset()
        return run

    def search(self, query, tenant=None, **arguments):
        tenant = tenant or self.tenant
        return self.integrator.with_company(tenant.company_id).call_tool(
            tenant, "semantic_search", {"query": query, **arguments}
        )

    def hit_ids(self, query, tenant=None, **arguments):
        return [hit["id"] for hit in self.search(query, tenant, **arguments)["hits"]]

    def test_discovery_declares_semantic_search(self):
        tool = self.server.tool_ids
        self.assertEqual(tool.mapped("name"), ["semantic_search"])
        self.assertTrue(tool.read_only and tool.idempotent and tool.enabled)
        self.assertFalse(tool.open_world or tool.destructive)
        properties = tool.input_schema["properties"]
        self.assertEqual(properties["purpose"]["enum"], ["products", "business_rules", "faq"])
        self.assertEqual(
            set(properties["filters"]["properties"]),
            {"category", "category_id", "default_code", "price", "topic", "lang"},
        )

    def test_index_products_through_the_job(self):
        with trap_jobs() as trap:
            self.server.action_qdrant_index_products()
            self.server.action_qdrant_index_products()
            run = self.server.index_run_ids
            self.assertEqual(len(run), 1, "a second click while queued reuses the run")
            self.assertEqual(run.state, "queued")
            trap.assert_jobs_count(1, only=run._perform)
            trap.perform_enqueued_jobs()
        run.invalidate_recordset()
        self.assertEqual(run.state, "done")
        self.assertGreaterEqual(run.total, len(CATALOG))
        self.assertEqual((run.done, run.progress), (run.total, 100.0))
        self.assertTrue(run.started_at and run.ended_at)
        self.assertFalse(run.error)
        result = self.search("camiseta preta", limit=3)
        self.assertEqual(result["purpose"], "products")
        best = result["hits"][0]
        self.assertEqual(best["id"], self.products[0].id)
        self.assertEqual(best["payload"]["price"], 49.9)
        self.assertEqual(best["payload"]["category"], "Camisetas")
        self.assertIn("CAM-PRETA", best["text"])
        self.assertEqual(self.hit_ids("tenis pra correr", limit=1), [self.products[1].id])

    def test_filters(self):
        self.index(self.server)
        shoes = self.hit_ids("produto", filters={"category": "Calçados"}, limit=20)
        self.assertIn(self.products[1].id, shoes)
        self.assertNotIn(self.products[0].id, shoes)
        cheap = self.search("produto", filters={"price": {"lt": 100}}, limit=20)["hits"]
        self.assertTrue(cheap)
        self.assertTrue(all(hit["payload"]["price"] < 100 for hit in cheap))
        # a key of another purpose: the model reads why, and can ask again
        refused = self.search("produto", filters={"topic": "frete"})
        self.assertTrue(refused["isError"])
        self.assertIn("cannot filter products on 'topic'", refused["content"][0]["text"])
        with mute_logger(*TOOL_LOGGERS), self.assertRaisesRegex(McpToolError, "input schema"):
            self.search("produto", filters={"price": {"between": [1, 2]}})

    def test_tenants_never_see_each_other(self):
        self.index(self.server)
        self.index(self.server_b)
        ids_a = self.hit_ids("camiseta preta", limit=20)
        ids_b = self.hit_ids("camiseta preta", tenant=self.tenant_b, limit=20)
        self.assertEqual(ids_a[0], self.products[0].id)
        self.assertEqual(ids_b[0], self.products_b[0].id)
        self.assertFalse(set(ids_a) & set(self.products_b.ids))
        self.assertFalse(set(ids_b) & set(self.products.ids))
        store = self.server_b._qdrant_store()
        names = [collection.name for collection in store.client.get_collections().collections]
        self.assertEqual(names, [f"t{self.tenant_b.account_id}_products"])

    def test_product_change_reindexes_in_a_job(self):
        self.index(self.server)
        kettle = self.products[3]
        with trap_jobs() as trap:
            kettle.product_tmpl_id.write({"name": "Chaleira Elétrica Inox"})
            self.products[0].product_tmpl_id.write({"weight": 1.5})  # not indexed
            trap.assert_jobs_count(1)
            trap.assert_enqueued_job(self.server._qdrant_sync_products, args=(kettle.ids,))
            (before,) = self.search("chaleira", filters={"default_code": "GAR-1L"})["hits"]
            self.assertIn("Garrafa", before["text"], "never indexed in the user's transaction")
            trap.perform_enqueued_jobs()
        self.assertEqual(self.hit_ids("chaleira elétrica", limit=1), kettle.ids)
        (hit,) = self.search("chaleira elétrica", limit=1)["hits"]
        self.assertIn("Chaleira", hit["text"])

    def test_new_product_is_indexed_by_a_job(self):
        self.index(self.server)
        with trap_jobs() as trap:
            template = self.env["product.template"].create(
                {"name": "Mochila Escolar Azul", "company_id": self.tenant.company_id.id}
            )
            trap.assert_jobs_count(1, only=self.server._qdrant_sync_products)
            trap.perform_enqueued_jobs()
        self.assertEqual(
            self.hit_ids("mochila azul pra escola", limit=1), template.product_variant_ids.ids
        )
        self.assertNotIn(
            template.product_variant_ids.id,
            self.hit_ids("mochila azul", tenant=self.tenant_b, limit=20),
        )

    def test_changes_before_the_first_index_write_nothing(self):
        result = self.server._qdrant_sync_products(self.products.ids)
        self.assertEqual(result, {"upserted": 0, "deleted": 0})
        store = self.server._qdrant_store()
        self.assertFalse(store.has_collection(self.tenant.account_id, "products"))
        self.assertEqual(self.search("camiseta")["hits"], [])

    def test_unlink_and_archive_remove_the_points(self):
        self.index(self.server)
        shoes, coffee = self.products[1], self.products[2]
        with trap_jobs() as trap:
            shoes_id = shoes.id
            shoes.product_tmpl_id.unlink()
            coffee.product_tmpl_id.active = False
            trap.assert_enqueued_job(self.server._qdrant_sync_products, args=([shoes_id],))
            trap.perform_enqueued_jobs()
        self.assertNotIn(shoes_id, self.hit_ids("tênis de corrida", limit=20))
        self.assertNotIn(coffee.id, self.hit_ids("cafeteira elétrica", limit=20))
        self.assertIn(self.products[0].id, self.hit_ids("camiseta", limit=20))

    def test_business_rules_are_indexed_when_they_change(self):
        with trap_jobs() as trap:
            self.tenant.business_rules = RULES
            run = self.server.index_run_ids
            self.assertEqual(run.purpose, "business_rules")
            self.assertFalse(self.server_b.index_run_ids)
            trap.assert_jobs_count(1)
            trap.perform_enqueued_jobs()
        run.invalidate_recordset()
        self.assertEqual((run.state, run.total, run.done), ("done", 3, 3))
        result = self.search("posso devolver o produto?", purpose="business_rules", limit=1)
        (hit,) = result["hits"]
        self.assertIn("Trocas e devoluções", hit["text"])
        self.assertEqual(hit["payload"], {"topic": "business_rules", "lang": self.tenant.language})
        # shorter rules: the chunks gone leave the index
        self.tenant.business_rules = "Frete grátis para compras acima de R$ 200."
        run = self.index(self.server, "business_rules")
        self.assertEqual((run.done, run.deleted), (1, 2))
        self.assertEqual(len(self.search("frete", purpose="business_rules")["hits"]), 1)
        self.assertEqual(self.search("frete", purpose="faq")["hits"], [])

    def test_a_new_account_id_indexes_everything_again(self):
        with trap_jobs() as trap:
            self.tenant_b.account_id = next(ACCOUNT_IDS)
            trap.assert_jobs_count(2)
        self.assertEqual(
            sorted(self.server_b.index_run_ids.mapped("purpose")), ["business_rules", "products"]
        )
        self.assertFalse(self.server.index_run_ids)

    def test_unreachable_qdrant_is_a_clear_error_in_bounded_time(self):
        down = self.make_server(
            code="down", kind="qdrant", qdrant_url=f"http://127.0.0.1:{closed_port()}", timeout=2
        )
        down.action_discover()
        self.addCleanup(shared_pool().discard, down._builtin_pool_key())
        started = time.monotonic()
        with mute_logger(*TOOL_LOGGERS), self.assertRaisesRegex(McpToolError, "127.0.0.1"):
            self.integrator.call_tool(self.tenant, "down_semantic_search", {"query": "camiseta"})
        down.action_check_health()
        self.assertEqual(down.health_state, "down")
        self.assertIn("127.0.0.1", down.last_error)
        with trap_jobs() as trap:
            down.action_qdrant_index_products()
            run = down.index_run_ids
            # not assertRaises: its savepoint would roll back what the job reported
            retry = None
            try:
                trap.perform_enqueued_jobs()
            except RetryableJobError as exc:
                retry = exc
            self.assertIsNotNone(retry, "the job asks to be retried")
        self.assertLess(time.monotonic() - started, 20)
        run.invalidate_recordset()
        self.assertEqual(run.state, "queued", "the job will try again")
        self.assertIn("retrying", run.error)

    def test_settings_are_checked(self):
        # Odoo's assertRaises (not assertRaisesRegex) rolls back the refused write
        with self.assertRaises(ValidationError) as refused:
            self.server.qdrant_url = "http://admin:pw@qdrant:6333"
        self.assertIn("must not hold credentials", str(refused.exception))
        with self.assertRaises(ValidationError) as refused:
            self.server.embedder = "litellm"
        self.assertIn("needs the name of its embedding model", str(refused.exception))
        self.server.qdrant_path = False
        self.assertEqual(
            self.server._qdrant_local_path(),
            os.path.join(
                config["data_dir"], "mcp_qdrant", self.env.cr.dbname, f"server_{self.server.id}"
            ),
        )
        self.assertFalse(self.server.qdrant_single_process_warning)
        with patch.dict(config.options, {"workers": 2}):
            self.server.invalidate_recordset(["qdrant_single_process_warning"])
            self.assertTrue(self.server.qdrant_single_process_warning)


@tagged("post_install", "-at_install")
class TestMongoServer(McpConnectorsCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        patcher = patch.object(mcp_server_mongodb, "CLIENT_FACTORY", mongomock.MongoClient)
        patcher.start()
        cls.addClassCleanup(patcher.stop)
        cls.tenant_b = cls.make_tenant("Loja B")
        # shared by the tenants of the company (no tenant): both reach the same database
        cls.credential = cls.env["mcp.credential"].create(
            {"name": "MongoDB bot", "kind": "basic", "username": "bot"}
        )
        cls.credential.secret_input = MONGO_PASSWORD
        values = {
            "code": "docs",
            "kind": "mongodb",
            "mongo_uri": "mongodb://127.0.0.1:27017/?authSource=admin",
            "mongo_database": "mcp_test",
            "mongo_collections": "orders, catalog",
            "credential_id": cls.credential.id,
            "timeout": 2.0,
        }
        cls.server = cls.make_server(**values)
        cls.server_b = cls.make_server(tenant=cls.tenant_b, **values)
        for server in cls.server | cls.server_b:
            server.action_discover()
            cls.addClassCleanup(shared_pool().discard, server._builtin_pool_key())

    def setUp(self):
        super().setUp()
        # mongomock keeps its documents across tests: a database of their own per test
        database = f"mcp_test_{uuid.uuid4().hex[:12]}"
        (self.server | self.server_b).mongo_database = database
        # A settings change closes the process's MongoDB clients, and mongomock's documents
        # live in its client: both servers take the new settings before any document is written.
        for server in self.server | self.server_b:
            server._mongo_tools()

    def call(self, tool, arguments=None, tenant=None):
        return self.integrator.call_tool(tenant or self.tenant, tool, arguments or {})

    def collection(self, purpose, tenant=None):
        """The tenant's collection, straight from the mongomock "server"."""
        settings = self.server._mongo_tools().settings
        client = mongo_tools.shared_client(settings, mongomock.MongoClient)
        name = mongo_tools.tenant_collection_name((tenant or self.tenant).account_id, purpose)
        return client[settings.database][name]

    def test_tools_and_the_password(self):
        self.assertEqual(
            sorted(self.server.tool_ids.mapped("name")),
            ["mongo_find", "mongo_get_behaviour", "mongo_get_config"],
        )
        self.assertTrue(all(self.server.tool_ids.mapped("enabled")))
        find = self.server.tool_ids.filtered(lambda tool: tool.name == "mongo_find")
        self.assertEqual(
            find.input_schema["properties"]["collection"]["enum"], ["catalog", "orders"]
        )
        settings = self.server._mongo_tools().settings
        self.assertTrue(settings.uri.startswith(f"mongodb://bot:{MONGO_PASSWORD}@127.0.0.1"))
        self.assertNotIn(MONGO_PASSWORD, repr(settings))
        rows = self.audit_rows(target=f"mcp.server,{self.server.id}")
        self.assertTrue(rows)
        self.assertFalse([row for row in rows if MONGO_PASSWORD in (row.arguments or "")])
        with self.assertRaises(ValidationError) as refused:
            self.server.mongo_uri = f"mongodb://bot:{MONGO_PASSWORD}@127.0.0.1:27017"
        self.assertIn("must not hold a password", str(refused.exception))
        self.assertNotIn(MONGO_PASSWORD, str(refused.exception))
        self.assertEqual(self.server.mongo_uri, "mongodb://127.0.0.1:27017/?authSource=admin")
        self.server.action_check_health()
        self.assertEqual(self.server.health_state, "up")
        # without an allow-list there is no find tool at all
        self.server.mongo_collections = False
        self.server.action_discover()
        self.assertFalse(
            self.server.tool_ids.filtered("available").filtered(
                lambda tool: tool.name == "mongo_find"
            )
        )

    def test_behaviour_document(self):
        self.assertIsNone(self.call("mongo_get_behaviour"))
        self.tenant.write({"tone": "formal", "business_rules": "Trocas em até 7 dias."})
        self.server.action_mongo_publish_behaviour()
        behaviour = self.call("mongo_get_behaviour")
        self.assertEqual(behaviour["tone"], "formal")
        self.assertEqual(behaviour["business_rules"], "Trocas em até 7 dias.")
        self.assertEqual(behaviour["account_id"], self.tenant.account_id)
        self.assertTrue(behaviour["published_at"])
        self.assertNotIn("open_now", behaviour, "a moment's value is not published")
        self.assertIsNone(self.call("mongo_get_behaviour", tenant=self.tenant_b))

    def test_tenant_change_publishes_the_behaviour_in_a_job(self):
        with trap_jobs() as trap:
            self.tenant.tone = "objective"
            trap.assert_jobs_count(1)
            trap.assert_enqueued_job(self.server._mongo_job_publish_behaviour)
            self.assertIsNone(self.call("mongo_get_behaviour"), "never in the user's transaction")
            trap.perform_enqueued_jobs()
        self.assertEqual(self.call("mongo_get_behaviour")["tone"], "objective")

    def test_config_entries(self):
        tools = self.server._mongo_tools()
        tools.put_config(self.tenant.account_id, "shipping", {"free_above": 200, "days": [1, 5]})
        self.assertEqual(
            self.call("mongo_get_config", {"key": "shipping"}),
            {"key": "shipping", "value": {"free_above": 200, "days": [1, 5]}},
        )
        self.assertIsNone(self.call("mongo_get_config", {"key": "missing"}))
        self.assertIsNone(self.call("mongo_get_config", {"key": "shipping"}, self.tenant_b))
        with mute_logger(*TOOL_LOGGERS), self.assertRaisesRegex(McpToolError, "input schema"):
            self.call("mongo_get_config", {"key": "../other"})

    def test_find_is_bounded_and_allow_listed(self):
        self.collection("orders").insert_many(
            [{"number": n, "status": "paid" if n % 2 else "open", "total": n} for n in range(30)]
        )
        self.collection("orders", self.tenant_b).insert_one({"number": 99, "status": "paid"})
        result = self.call(
            "mongo_find",
            {
                "collection": "orders",
                "filter": {"status": "paid", "total": {"$gte": 5}},
                "projection": ["number", "status"],
                "sort": [["number", 1]],
                "limit": 3,
            },
        )
        self.assertEqual([doc["number"] for doc in result["documents"]], [5, 7, 9])
        self.assertTrue(result["truncated"])
        self.assertEqual(set(result["documents"][0]), {"_id", "number", "status"})
        json.dumps(result)
        result_b = self.call("mongo_find", {"collection": "orders"}, self.tenant_b)
        self.assertEqual([doc["number"] for doc in result_b["documents"]], [99])
        with mute_logger(*TOOL_LOGGERS), self.assertRaisesRegex(McpToolError, "input schema"):
            self.call("mongo_find", {"collection": "customers"})
        with mute_logger(*TOOL_LOGGERS), self.assertRaisesRegex(McpToolError, "input schema"):
            self.call("mongo_find", {"collection": "orders", "limit": 1000})

    def test_operators_that_run_code_are_refused(self):
        self.collection("orders").insert_one({"number": 1, "total": 10})
        for query in (
            {"$where": "sleep(5000) || true"},
            {"total": {"$function": {"body": "return true", "args": [], "lang": "js"}}},
            {"$expr": {"$function": {"body": "return true", "args": [], "lang": "js"}}},
            {"total": {"$accumulator": {}}},
            {"$or": [{"number": 1}, {"$where": "true"}]},
        ):
            result = self.call("mongo_find", {"collection": "orders", "filter": query})
            self.assertTrue(result["isError"], query)
            self.assertIn("is not allowed", result["content"][0]["text"])

    def test_unreachable_mongodb_is_a_clear_error_in_bounded_time(self):
        down = self.make_server(
            code="down",
            kind="mongodb",
            mongo_uri=f"mongodb://127.0.0.1:{closed_port()}",
            mongo_database="mcp_test",
            credential_id=self.credential.id,
            timeout=0.3,
        )
        down.action_discover()
        self.addCleanup(shared_pool().discard, down._builtin_pool_key())
        started = time.monotonic()
        with patch.object(mcp_server_mongodb, "CLIENT_FACTORY", None):  # real pymongo
            with mute_logger(*TOOL_LOGGERS), self.assertRaises(McpToolError) as error:
                self.call("down_mongo_get_behaviour")
            down.action_check_health()
            with self.assertRaises(RetryableJobError):
                down._mongo_job_publish_behaviour()
        self.assertLess(time.monotonic() - started, 20)
        self.assertIn("unavailable", str(error.exception))
        self.assertNotIn(MONGO_PASSWORD, str(error.exception))
        self.assertEqual(down.health_state, "down")
        self.assertNotIn(MONGO_PASSWORD, down.last_error)
