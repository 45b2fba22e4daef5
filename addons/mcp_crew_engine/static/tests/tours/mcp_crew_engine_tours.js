/* License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0). */
import { registry } from "@web/core/registry";
import { stepUtils } from "@web_tour/tour_utils";

// The test that starts this tour creates the tenant "Loja Tour", its LLM a fake provider
// scripted with an answer that holds ANSWER (tests/test_browser.py).
const TENANT = "Loja Tour";
const ANSWER = "O vestido floral no tamanho M custa";

// An admin creates a crew with one agent, then tries it as a customer from the crew's form:
// the wizard shows the answer and the run's transcript.
registry.category("web_tour.tours").add("mcp_crew_engine_crew_try_tour", {
    steps: () => [
        ...stepUtils.goToAppSteps("mcp_integrator.menu_mcp_root", "Open AI Integration"),
        {
            trigger: ".o_main_navbar [data-menu-xmlid='mcp_crew_engine.menu_mcp_crew_root']",
            run: "click",
        },
        {
            trigger: ".dropdown-item[data-menu-xmlid='mcp_crew_engine.menu_mcp_crew']",
            run: "click",
        },
        { trigger: ".o_list_button_add", run: "click" },
        { trigger: ".o_field_widget[name=name] input", run: "edit Vendas Tour" },
        { trigger: ".o_field_widget[name=code] input", run: "edit vendas" },
        { trigger: ".o_field_widget[name=tenant_id] input", run: `edit ${TENANT}` },
        {
            // the record, not the "Create ..." option offered before the search answers
            trigger:
                ".o_field_widget[name=tenant_id] .o-autocomplete--dropdown-item" +
                `:not(.o_m2o_dropdown_option):contains(${TENANT})`,
            run: "click",
        },
        {
            trigger: ".o_field_widget[name=purpose] textarea",
            run: "edit Dúvidas sobre produtos: preços, tamanhos, cores e estoque.",
        },
        {
            trigger: ".o_field_widget[name=examples] textarea",
            run: "edit Vocês têm essa camiseta no tamanho G?",
        },
        { trigger: ".o_notebook .nav-link[name=agents]", run: "click" },
        { trigger: ".o_field_widget[name=agent_ids] .o_field_x2many_list_row_add a", run: "click" },
        { trigger: ".modal .o_field_widget[name=name] input", run: "edit Ana" },
        {
            trigger: ".modal .o_field_widget[name=role] input",
            run: "edit assistente de vendas de uma loja de roupas",
        },
        { trigger: ".modal .o_form_button_save", run: "click" },
        {
            trigger:
                "body:not(:has(.modal)) .o_field_widget[name=agent_ids] " +
                ".o_data_row td[name=name]:contains(Ana)",
        },
        ...stepUtils.saveForm(),
        { trigger: ".o_form_saved button[name=action_try]", run: "click" },
        {
            trigger: ".modal .o_field_widget[name=message] textarea",
            run: "edit Vocês têm o vestido floral no tamanho M?",
        },
        { trigger: ".modal button[name=action_send]", run: "click" },
        { trigger: `.modal .o_field_widget[name=answer]:contains(${ANSWER})` },
        { trigger: ".modal .o_field_widget[name=state]:contains(Answered)" },
        { trigger: ".modal .o_field_widget[name=crew_id]:contains(Vendas Tour)" },
        {
            // the transcript: the customer's message, the agent's LLM step and the answer
            trigger:
                ".modal .o_mcp_crew_transcript:contains(Customer)" +
                ":contains(Vocês têm o vestido floral):contains(Ana · LLM):contains(answered)" +
                ":contains(Answer)",
        },
    ],
});
