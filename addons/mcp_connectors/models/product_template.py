# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import models

#: Template fields the Qdrant product index holds (new variants are caught on their creation).
INDEXED_FIELDS = frozenset(
    {"name", "description_sale", "categ_id", "list_price", "sale_ok", "active", "company_id"}
)


class ProductTemplate(models.Model):
    """A template's change re-indexes its variants (see product_product.py)."""

    _inherit = "product.template"

    def write(self, vals):
        if not INDEXED_FIELDS.intersection(vals):
            return super().write(vals)
        variants = self.with_context(active_test=False).product_variant_ids
        companies = variants._mcp_index_companies()
        result = super().write(vals)
        variants._mcp_reindex(companies)
        return result

    def unlink(self):
        variants = self.with_context(active_test=False).product_variant_ids
        product_ids, companies = variants.ids, variants._mcp_index_companies()
        result = super().unlink()
        self.env["mcp.server"]._qdrant_products_changed(product_ids, companies)
        return result
