"""The "Blind vote" tab: one prompt, two systems drawn at random, answers shown as A and B;
names, stages and scores stay hidden until the vote, then the reveal.

Lays out and wires only: battles, votes and the reveal live in demo/arena/service.py; the
markup comes from the pure functions below (escaped, tested without a browser). The browser
holds nothing but the battle id; which system is A is known to the server alone.
"""

from __future__ import annotations

import time
from typing import Any

import gradio as gr

from ...arena.battles import ATTRIBUTES, OUTCOME_LABELS, VoteRefused
from ...arena.limits import client_address
from ...arena.service import TYPED, InvalidPrompt, RateLimited, Reveal
from ...arena.systems import FORMAT_LABELS
from ...compare import paced
from ...errors import public_message
from .. import views
from ..context import UIContext

TITLE = "Blind vote"
SCREEN_INTERVAL_SECONDS = 0.05
VOTE_BUTTONS = (
    ("A", "vote-a", "👈 A is better"),
    ("B", "vote-b", "👉 B is better"),
    ("tie", "vote-tie", "🤝 Tie"),
    ("bad", "vote-bad", "👎 Both are bad"),
)
INTRO = (
    "Two systems drawn at random from the configured ones (a base model raw or few-shot "
    "prompted, an aligned chat model) answer the same prompt. Which answer is better? Names, "
    "stages and scores stay hidden until you vote, as in Chatbot Arena and the InstructGPT "
    "labelling. Votes are stored without any personal data and feed the Leaderboard tab. "
    "Unlike the Compare tab, which is reproducible by seed, every battle samples with secret seeds "
    "drawn afresh: running the prompt elsewhere first cannot tell you which system wrote A."
)


def status_html(voting_error: str | None) -> str:
    if voting_error is None:
        return ""
    return (
        f'<div class="demo-error" role="alert">Voting is unavailable: {views.escape(voting_error)}. '
        "You can still run battles here and comparisons in the Compare tab.</div>"
    )


def message_html(text: str, error: bool = True) -> str:
    if not text:
        return ""
    css = "demo-error" if error else "demo-muted"
    return f'<div class="{css}" role="{"alert" if error else "status"}">{views.escape(text)}</div>'


def blind_answer_html(side, streaming: bool) -> str:
    """The answer only: an error is shown without the model's name (it would unblind)."""
    if side.error:
        return '<div class="demo-error" role="alert">⚠️ This answer failed; press Next for a new battle.</div>'
    if side.text.strip():
        return f'<div class="demo-answer">{views.escape(side.text)}</div>'
    return '<div class="demo-waiting">…</div>' if streaming else '<div class="demo-muted">(an empty answer)</div>'


def reveal_html(reveal: Reveal) -> str:
    """Who was A and who was B, both rewards, the judge's verdict, and whether it agreed."""
    rows = []
    for position, system, reward in zip("AB", reveal.systems, reveal.rewards):
        score = "no score" if reward is None else f"{reward:+.2f}"
        stage = views.STAGE_LABELS.get(system.stage, system.stage)
        rows.append(
            f"<tr><td><b>{position}</b></td><td>{views.escape(system.name)}</td><td>{views.escape(stage)} "
            f"({views.escape(system.stage)})</td><td>{views.escape(FORMAT_LABELS[system.format])}</td>"
            f"<td>{score}</td></tr>"
        )
    judge = {"A": "prefers A", "B": "prefers B", "tie": "calls it a tie", None: "has no score (reward unavailable)"}[
        reveal.judge
    ]
    if reveal.agreed is None:
        if reveal.winner in ("tie", "bad"):
            agreement = "no agreement to measure (you called it a tie or both bad)"
        else:
            agreement = "no agreement to measure"
    else:
        agreement = "it agrees with you ✅" if reveal.agreed else "it disagrees with you ❌"
    notes = []
    if reveal.self_identified:
        notes.append("An answer names a model, so this vote is kept but left out of the ratings.")
    if reveal.too_fast:
        notes.append(
            "This vote came sooner than both answers could be read, so it is kept but left out of the ratings."
        )
    if not reveal.stored:
        notes.append("This vote had already been recorded; it counts once.")
    note = "".join(f'<p class="demo-muted">{views.escape(n)}</p>' for n in notes)
    return (
        f'<div class="arena-reveal"><p>Your vote: <b>{views.escape(OUTCOME_LABELS[reveal.winner])}</b> — recorded.</p>'
        "<table><thead><tr><th></th><th>model</th><th>stage</th><th>input format</th><th>reward</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        f"<p>The judge (reward model) {judge}: {agreement}.</p>{note}</div>"
    )


def build(context: UIContext) -> None:
    arena, leaderboard_cache = context.arena_services()
    limits = context.config.limits

    gr.Markdown(INTRO)
    gr.HTML(status_html(arena.voting_error), elem_id="arena-status")
    prompt = gr.Textbox(
        label="Prompt",
        lines=3,
        max_lines=12,
        max_length=limits.max_prompt_chars,
        placeholder="Type an instruction, or take a random example",
        elem_id="arena-prompt",
    )
    with gr.Row(equal_height=True):
        run_btn = gr.Button("Battle ▶", variant="primary", elem_id="arena-run", scale=2, min_width=90)
        random_btn = gr.Button("🎲 Random example", elem_id="arena-random", min_width=90)
    example = gr.State(None)  # (prompt, category) of the last random example
    battle_id = gr.State(None)
    message = gr.HTML(elem_id="arena-message")
    with gr.Row(equal_height=False):
        answers = {}
        for position in ("A", "B"):
            with gr.Column(min_width=300, elem_classes="demo-side"):
                gr.Markdown(f"### Answer {position}")
                answers[position] = gr.HTML(elem_id=f"arena-answer-{position.lower()}")
    with gr.Row(equal_height=True):
        buttons = {
            outcome: gr.Button(label, elem_id=elem_id, interactive=False, min_width=80)
            for outcome, elem_id, label in VOTE_BUTTONS
        }
    with gr.Accordion("Optional: the paper's labelling form, per answer", open=False):
        form = {}
        with gr.Row():
            for position in ("A", "B"):
                with gr.Column():
                    form[position] = (
                        gr.CheckboxGroup(
                            [(label, key) for key, label in ATTRIBUTES],
                            label=f"Answer {position}",
                            elem_id=f"arena-attrs-{position.lower()}",
                        ),
                        gr.Radio(
                            [str(n) for n in range(1, 8)],
                            label=f"Overall quality of {position} (1 = worst, 7 = best)",
                            elem_id=f"arena-rating-{position.lower()}",
                        ),
                    )
    reveal = gr.HTML(elem_id="arena-reveal")
    next_btn = gr.Button("Next ↻", elem_id="arena-next", visible=False)

    vote_buttons = list(buttons.values())
    form_fields = [field for pair in form.values() for field in pair]

    def locked():
        # Built inside handlers only: a gr.Button made here, in the Blocks context, would be a
        # new (rendered) button rather than an update.
        return [gr.Button(interactive=False)] * len(vote_buttons)

    def address_of(request: gr.Request) -> str:
        client = getattr(request, "client", None)
        return client_address(
            getattr(client, "host", None), dict(request.headers), context.config.arena.trusted_proxies
        )

    def run(prompt_text, last_example, request: gr.Request):
        session = request.session_hash or "anonymous"
        category = last_example[1] if last_example and last_example[0] == prompt_text else TYPED
        try:
            battle = arena.new_battle(session, prompt_text, category, address_of(request))
        except (InvalidPrompt, RateLimited) as error:
            yield [None, message_html(str(error)), "", "", "", gr.Button(visible=False), *locked()]
            return
        except Exception as error:  # anything else: a sentence and an id; the detail goes to the log
            yield [
                None,
                message_html(public_message(error, "starting a battle")),
                "",
                "",
                "",
                gr.Button(visible=False),
                *locked(),
            ]
            return
        workers = [arena.comparator.workers[s.model_id] for s in battle.systems]
        while any(w.state == "loading" for w in workers):
            yield [
                battle.id,
                message_html("The models are still loading…", error=False),
                "",
                "",
                "",
                gr.Button(visible=False),
                *locked(),
            ]
            time.sleep(1.0)
        snapshot = None
        for snapshot in paced(arena.stream(battle), SCREEN_INTERVAL_SECONDS):
            yield [
                battle.id,
                "",
                *(blind_answer_html(snapshot.side(role), True) for role in battle.roles),
                "",
                gr.Button(visible=False),
                *locked(),
            ]
        open_to_vote = arena.registry.get(session, battle.id) is not None and battle.state == "finished"
        note = "" if open_to_vote else message_html("An answer failed, so this battle cannot be voted on. Press Next.")
        final = [blind_answer_html(snapshot.side(role), False) for role in battle.roles] if snapshot else ["", ""]
        yield [
            battle.id,
            note,
            *final,
            "",
            gr.Button(visible=not open_to_vote),
            *([gr.Button(interactive=open_to_vote and arena.voting_error is None)] * len(vote_buttons)),
        ]

    def vote_for(outcome: str):
        def vote(current, attrs_a, rating_a, attrs_b, rating_b, request: gr.Request):
            session = request.session_hash or "anonymous"
            try:
                result = arena.vote(
                    session,
                    current,
                    outcome,
                    {"A": attrs_a or [], "B": attrs_b or []},
                    (rating_a, rating_b),
                    address=address_of(request),
                )
            except VoteRefused as error:
                gr.Warning(str(error))
                return [message_html(str(error)), gr.skip(), gr.skip(), *[gr.skip()] * len(vote_buttons)]
            leaderboard_cache.poke()  # the Leaderboard tab says "updating…" until it counts this vote
            return [message_html(""), reveal_html(result), gr.Button(visible=True), *locked()]

        return vote

    run_outputs = [battle_id, message, answers["A"], answers["B"], reveal, next_btn, *vote_buttons]
    run_args: dict[str, Any] = dict(
        fn=run,
        inputs=[prompt, example],
        outputs=run_outputs,
        show_progress="minimal",
        concurrency_limit=limits.concurrency_limit,
        concurrency_id="compare",
        api_visibility="private",
    )
    run_btn.click(**run_args)
    prompt.submit(**run_args)

    def pick_random():
        chosen = arena.random_example()
        return chosen.prompt, (chosen.prompt, chosen.category)

    random_btn.click(pick_random, None, [prompt, example], queue=False, api_visibility="private").then(**run_args)
    for outcome, button in buttons.items():
        button.click(
            vote_for(outcome),
            [battle_id, *form_fields],
            [message, reveal, next_btn, *vote_buttons],
            concurrency_limit=8,
            concurrency_id="arena-vote",
            api_visibility="private",
        )

    def next_battle():
        return ["", None, "", "", "", "", gr.Button(visible=False), *locked(), *([None] * len(form_fields))]

    next_btn.click(
        next_battle,
        None,
        [prompt, battle_id, message, answers["A"], answers["B"], reveal, next_btn, *vote_buttons, *form_fields],
        queue=False,
        api_visibility="private",
    )
