"""Built-in routing vocabulary of a Brazilian shop's customer service (pt-BR, a little English).

Each concept groups the words and phrases customers and crews use for one routing subject
("estorno", "reembolso" and "dinheiro de volta" are one refund). The router reads every text
through it, crews' hints and messages alike (``routing.terms``): a phrase of a concept becomes
the one term ``#<concept>``, which matches only the same concept, so a message meets a crew that
words the subject differently. Words outside the lexicon keep the router's usual matching
(stems, shared prefixes, one-letter typos).

Entries are comma-separated and written as people write them (accents and case do not matter).
A word ending in ``*`` stands for every word it begins ("reembols*": reembolso, reembolsar).
Function words inside a phrase are optional in the message ("dinheiro de volta" also matches
"dinheiro volta"); a phrase may start with one ("no 37"). The longest phrase at a place wins.

A concept's weight multiplies what it adds to a crew's keyword score: ``STRONG`` for what must
outweigh the topic around it (a legal threat; asking for a person, not the mere mention of one:
"a atendente disse que..." is not a request), ``WEAK`` for words that
qualify any topic: "quanto tempo" asks about a delivery, a refund or an exchange alike, and
"no cartão" or "parcelar" about a refund or a product as often as about the means of payment.

Only vocabulary any shop's support team would agree with belongs here: no tenant's products,
places or crew names.
"""

STRONG = 2.0
NORMAL = 1.0
WEAK = 0.5

# Clothing and shoe sizes after the words that announce one ("no P", "tamanho 38", "nº 42").
_SIZES = ("pp", "p", "m", "g", "gg", "xg", "xgg", "eg", "egg", "exg", *map(str, range(33, 47)))
_SIZE_PHRASES = ", ".join(
    f"{lead} {size}" for lead in ("no", "na", "num", "numero", "tam", "tamanho") for size in _SIZES
)

#: ``{concept: (weight, entries)}``.
CONCEPTS = {
    # products: what there is, for how much, in which size
    "disponibilidade": (
        NORMAL,
        """
        estoque, estoques, disponível, disponíveis, disponibilidade, indisponível, esgotad*,
        esgotou, esgotaram, reposição, repor, in stock, available, availability, sold out
        """,
    ),
    "preco": (NORMAL, "preço, preços, valor, valores, custa, custam, custo, price, prices, cost"),
    "promocao": (
        NORMAL,
        """
        promoção, promoções, promo, promocional, desconto*, cupom, cupons, liquidação, saldão,
        oferta*, black friday, queima de estoque, sale, discount*, coupon*
        """,
    ),
    "tamanho": (
        NORMAL,
        f"tamanho, tamanhos, numeração, numerações, size, sizes, {_SIZE_PHRASES}",
    ),
    "catalogo": (
        NORMAL,
        """
        catálogo, catálogos, anúncio, anúncios, vitrine, coleção, coleções, lançamento*,
        novidade*, catalog*
        """,
    ),
    "recomendacao": (NORMAL, "recomend*, indica, indicar, indicação, sugest*, sugere, sugerir"),
    "tecido": (
        NORMAL,
        """
        tecido*, material, materiais, composição, algodão, poliéster, linho, viscose, seda,
        malha, couro, elastano, fabric, cotton
        """,
    ),
    # orders already placed: where they are, how they travel
    "rastreio": (NORMAL, "rastreio, rastreios, rastreamento, rastrear, rastreável, tracking"),
    "entrega": (
        NORMAL,
        """
        entrega*, entregar, entregou, entregue, entregaram, entregador*, envio*, enviad*,
        despach*, transportadora*, correio*, sedex, frete*, shipping, delivery
        """,
    ),
    "atraso": (NORMAL, "atrasad*, atraso*, atrasou, extraviad*, extravio, parado, late, delayed"),
    "status": (
        NORMAL,
        """
        status, andamento, situação, confirmação, acompanhar, acompanhamento, cadê, aguardando,
        pendente, em separação, em trânsito, saiu para entrega, order status
        """,
    ),
    "nota_fiscal": (
        NORMAL,
        "nota fiscal, notas fiscais, nf, nfe, danfe, cupom fiscal, invoice",
    ),
    "prazo": (
        WEAK,
        """
        prazo, prazos, demora, demoram, demorar, demorando, demorou, quanto tempo,
        quantos dias, how long
        """,
    ),
    # after the purchase: exchanges, returns, refunds, faults
    "reembolso": (
        NORMAL,
        """
        reembols*, estorno*, estornar, estornad*, estornou, ressarcimento, ressarcir,
        dinheiro de volta, devolv* dinheiro, devolução do dinheiro, refund*, chargeback
        """,
    ),
    "devolucao": (NORMAL, "devolu*, devolv*"),
    "defeito": (
        NORMAL,
        """
        defeito*, defeituos*, quebrad*, quebrou, rasgad*, rasgou, furad*, furou, manchad*,
        mancha, manchas, descosturad*, descosturou, descolad*, descolou, desbot*, desfiad*,
        desfiou, estragad*, estragou, danificad*, avariad*, broken, damaged, defective, faulty
        """,
    ),
    "item_errado": (NORMAL, "errad*, veio diferente, produto diferente, wrong"),
    "caimento": (
        NORMAL,
        """
        apertad*, folgad*, ficou pequen*, ficou grand*, ficou curt*, ficou compri*,
        ficou larg*, serviu, coube, too small, too big, too tight
        """,
    ),
    "arrependimento": (NORMAL, "arrependi*, arrepender, desisti, desistir, desistência"),
    # appointments in the shop
    "agendamento": (
        NORMAL,
        """
        agend*, marcar, marcado, marcada, marquei, marcação, remarc*, reagend*, desmarc*,
        reservar horário, hora marcada, appointment*, booking, schedule*
        """,
    ),
    "prova": (NORMAL, "prova, provas, provar, provador*, experimentar, fitting"),
    "atendimento_personalizado": (
        NORMAL,
        "atendimento personalizado, consultor*, personal stylist, stylist, personal shopper",
    ),
    # the shop itself
    "funcionamento": (
        NORMAL,
        """
        funcionamento, abre, abrem, aberto, aberta, abertos, fecha, fecham, fechado, fechada,
        expediente, opening hours
        """,
    ),
    "endereco": (
        NORMAL,
        """
        endereço, localização, localizada, localizado, onde fica, onde ficam, como chegar,
        address, location
        """,
    ),
    "pagamento": (
        WEAK,
        "pagamento*, pix, boleto*, cartão, cartões, crédito, débito, parcel*, juros, payment",
    ),
    # a person must take over
    "pessoa": (
        STRONG,
        """
        humano, humana, pessoa de verdade, pessoa real, alguém de verdade, falar com uma pessoa,
        falar com alguém, falar com atendente*, falar com gerente, falar com supervisor*,
        quero um atendente*, chama atendente*, chamar atendente*, chama alguém,
        passa pra atendente*, passar pra atendente*, transfere pra atendente*,
        transferir pra atendente*, robô, bot, chatbot, human, real person, talk to someone
        """,
    ),
    "ameaca_legal": (
        STRONG,
        """
        procon, advogad*, justiça, judicial, judicialmente, juizado, pequenas causas,
        processar, entrar com processo, abrir processo, mover processo, reclame aqui,
        reclameaqui, consumidor gov, danos morais, denunci*, lawyer, lawsuit, sue
        """,
    ),
    "insatisfacao": (
        NORMAL,
        """
        reclam*, queixa, absurdo, absurda, vergonha, vergonhoso, palhaçada, ridículo, ridícula,
        descaso, desrespeito, falta de respeito, péssimo, péssima, horrível, lixo, irritad*,
        revoltad*, indignad*, ninguém resolve, ninguém responde, ninguém atende, unacceptable
        """,
    ),
}
