"""The "Blind vote" tab: one prompt, two systems drawn at random, answers shown as A and B;
names, stages and scores stay hidden until the vote, then the reveal.

Lays out and wires only: battles, votes and the reveal live in demo/arena/service.py; the
markup comes from the pure functions below (escaped, tested without a browser). The browser
holds nothing but the battle id; which system is A is known to the server alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ...arena.battles import ATTRIBUTES, OUTCOME_LABELS, VoteRefused
from ...arena.limits import client_address
from ...arena.service import TYPED, Arena, InvalidPrompt, LeaderboardCache, RateLimited, Reveal
from ...arena.systems import FORMAT_LABELS
from ...compare import paced
from ...errors import public_message
from .. import views
from ..context import UIContext
from ..run_controls import RunControls, run_event, session_of, wait_until_ready

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


@dataclass(frozen=True)
class ArenaLayout:
    """The tab's components: prompt and buttons, the battle's state, answers, votes, the form."""

    controls: RunControls
    random_btn: gr.Button
    example: gr.State  # (prompt, category) of the last random example
    battle_id: gr.State
    message: gr.HTML
    answers: dict[str, gr.HTML]  # by position, "A" and "B"
    buttons: dict[str, gr.Button]  # by outcome
    form: dict[str, tuple[gr.CheckboxGroup, gr.Radio]]  # by position: attributes, overall rating
    reveal: gr.HTML
    next_btn: gr.Button

    @property
    def vote_buttons(self) -> list[gr.Button]:
        return list(self.buttons.values())

    @property
    def form_fields(self) -> list[gr.components.Component]:
        return [field for pair in self.form.values() for field in pair]


def build(context: UIContext) -> None:
    arena, leaderboard_cache = context.arena_services()
    layout = lay_out(arena, context.config.limits.max_prompt_chars)
    wire(context, arena, leaderboard_cache, layout)


def lay_out(arena: Arena, max_prompt_chars: int) -> ArenaLayout:
    gr.Markdown(INTRO)
    gr.HTML(status_html(arena.voting_error), elem_id="arena-status")
    prompt = gr.Textbox(
        label="Prompt",
        lines=3,
        max_lines=12,
        max_length=max_prompt_chars,
        placeholder="Type an instruction, or take a random example",
        elem_id="arena-prompt",
    )
    with gr.Row(equal_height=True):
        run_btn = gr.Button("Battle ▶", variant="primary", elem_id="arena-run", scale=2, min_width=90)
        random_btn = gr.Button("🎲 Random example", elem_id="arena-random", min_width=90)
    example = gr.State(None)
    battle_id = gr.State(None)
    message = gr.HTML(elem_id="arena-message")
    answers = answer_columns()
    with gr.Row(equal_height=True):
        buttons = {
            outcome: gr.Button(label, elem_id=elem_id, interactive=False, min_width=80)
            for outcome, elem_id, label in VOTE_BUTTONS
        }
    form = labelling_form()
    reveal = gr.HTML(elem_id="arena-reveal")
    next_btn = gr.Button("Next ↻", elem_id="arena-next", visible=False)
    return ArenaLayout(
        RunControls(prompt, run_btn), random_btn, example, battle_id, message, answers, buttons, form, reveal, next_btn
    )


def answer_columns() -> dict[str, gr.HTML]:
    answers = {}
    with gr.Row(equal_height=False):
        for position in ("A", "B"):
            with gr.Column(min_width=300, elem_classes="demo-side"):
                gr.Markdown(f"### Answer {position}")
                answers[position] = gr.HTML(elem_id=f"arena-answer-{position.lower()}")
    return answers


def labelling_form() -> dict[str, tuple[gr.CheckboxGroup, gr.Radio]]:
    """The paper's labelling form, per answer: its attributes and an overall rating from 1 to 7."""
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
    return form


def wire(context: UIContext, arena: Arena, leaderboard_cache: LeaderboardCache, layout: ArenaLayout) -> None:
    votes = len(layout.vote_buttons)
    # What a run and Next both set, besides the vote buttons.
    battle = [
        layout.battle_id,
        layout.message,
        layout.answers["A"],
        layout.answers["B"],
        layout.reveal,
        layout.next_btn,
    ]
    run_args = run_event(
        battle_run(context, arena, votes),
        [layout.controls.prompt, layout.example],
        [*battle, *layout.vote_buttons],
        context.config.limits.concurrency_limit,
    )
    layout.controls.wire(run_args, context.stops)

    def pick_random():
        chosen = arena.random_example()
        return chosen.prompt, (chosen.prompt, chosen.category)

    layout.random_btn.click(
        pick_random, None, [layout.controls.prompt, layout.example], queue=False, api_visibility="private"
    ).then(**run_args)
    for outcome, button in layout.buttons.items():
        button.click(
            vote_for(context, arena, leaderboard_cache, outcome, votes),
            [layout.battle_id, *layout.form_fields],
            [layout.message, layout.reveal, layout.next_btn, *layout.vote_buttons],
            concurrency_limit=8,
            concurrency_id="arena-vote",
            api_visibility="private",
        )

    def next_battle():
        return ["", None, "", "", "", "", gr.Button(visible=False), *locked(votes), *([None] * len(layout.form_fields))]

    layout.next_btn.click(
        next_battle,
        None,
        [layout.controls.prompt, *battle, *layout.vote_buttons, *layout.form_fields],
        queue=False,
        api_visibility="private",
    )


def locked(votes: int) -> list:
    # Built inside handlers only: a gr.Button made in the Blocks context would be a new
    # (rendered) button rather than an update.
    return [gr.Button(interactive=False)] * votes


def address_of(context: UIContext, request: gr.Request) -> str:
    client = getattr(request, "client", None)
    return client_address(getattr(client, "host", None), dict(request.headers), context.config.arena.trusted_proxies)


def hidden(battle_id: str | None, message: str, votes: int) -> list:
    """The run's outputs while there is nothing to show or vote on: no answers, no Next button,
    the votes locked."""
    return [battle_id, message, "", "", "", gr.Button(visible=False), *locked(votes)]


def battle_run(context: UIContext, arena: Arena, votes: int):
    """The run: a battle drawn for the prompt, both answers streamed blind, then the votes
    unlocked where the battle can be voted on (or Next shown where it cannot)."""

    def run(prompt_text, last_example, request: gr.Request):
        session = session_of(request)
        category = last_example[1] if last_example and last_example[0] == prompt_text else TYPED
        try:
            battle = arena.new_battle(session, prompt_text, category, address_of(context, request))
        except (InvalidPrompt, RateLimited) as error:
            yield hidden(None, message_html(str(error)), votes)
            return
        except Exception as error:  # anything else: a sentence and an id; the detail goes to the log
            yield hidden(None, message_html(public_message(error, "starting a battle")), votes)
            return
        workers = [arena.comparator.workers[s.model_id] for s in battle.systems]
        loading = message_html("The models are still loading…", error=False)
        yield from wait_until_ready(workers, lambda: hidden(battle.id, loading, votes))
        snapshot = None
        for snapshot in paced(arena.stream(battle), SCREEN_INTERVAL_SECONDS):
            answers = [blind_answer_html(snapshot.side(role), True) for role in battle.roles]
            yield [battle.id, "", *answers, "", gr.Button(visible=False), *locked(votes)]
        open_to_vote = arena.registry.get(session, battle.id) is not None and battle.state == "finished"
        note = "" if open_to_vote else message_html("An answer failed, so this battle cannot be voted on. Press Next.")
        final = [blind_answer_html(snapshot.side(role), False) for role in battle.roles] if snapshot else ["", ""]
        unlocked = [gr.Button(interactive=open_to_vote and arena.voting_error is None)] * votes
        yield [battle.id, note, *final, "", gr.Button(visible=not open_to_vote), *unlocked]

    return run


def vote_for(context: UIContext, arena: Arena, leaderboard_cache: LeaderboardCache, outcome: str, votes: int):
    """The handler of one vote button: the vote stored and the reveal shown, or a warning."""

    def vote(current, attrs_a, rating_a, attrs_b, rating_b, request: gr.Request):
        try:
            result = arena.vote(
                session_of(request),
                current,
                outcome,
                {"A": attrs_a or [], "B": attrs_b or []},
                (rating_a, rating_b),
                address=address_of(context, request),
            )
        except VoteRefused as error:
            gr.Warning(str(error))
            return [message_html(str(error)), gr.skip(), gr.skip(), *[gr.skip()] * votes]
        leaderboard_cache.poke()  # the Leaderboard tab says "updating…" until it counts this vote
        return [message_html(""), reveal_html(result), gr.Button(visible=True), *locked(votes)]

    return vote
