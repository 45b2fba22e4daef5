# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, models

#: Variant fields the Qdrant product index holds (the template's are in product_template.py).
INDEXED_FIELDS = frozenset({"default_code", "active", "product_template_attribute_value_ids"})


class ProductProduct(models.Model):
    """Products changed, created or deleted: their Qdrant index entries follow, by a queue
    job per Qdrant server (see ``mcp.server._qdrant_products_changed``)."""

    _inherit = "product.product"

    @api.model_create_multi
    def create(self, vals_list):
        products = super().create(vals_list)
        products._mcp_reindex()
        return products

    def write(self, vals):
        if not INDEXED_FIELDS.intersection(vals):
            return super().write(vals)
        companies = self._mcp_index_companies()
        result = super().write(vals)
        self._mcp_reindex(companies)
        return result

    def unlink(self):
        product_ids, companies = self.ids, self._mcp_index_companies()
        result = super().unlink()
        self.env["mcp.server"]._qdrant_products_changed(product_ids, companies)
        return result

    def _mcp_index_companies(self):
        """The companies whose tenants may show these products (False: shared by all)."""
        return {product.company_id.id for product in self.sudo()}

    def _mcp_reindex(self, companies_before=frozenset()):
        self.env["mcp.server"]._qdrant_products_changed(
            self.ids, set(companies_before) | self._mcp_index_companies()
        )
