//! Redraw cost of every view with full pages (target: a full redraw ≤ 2 ms),
//! drawn into a `TestBackend`. `scripts/bench.sh` runs
//!   cargo run --release -p tui-admin --example redraw_bench
//! and reads the `FIGURE tui_redraw …` lines; the exit code is 1 if a view's
//! median is over the target in a release build.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use billing_api::types::Page;
use common::*;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tui_admin::app::{Action, App, RpcAnswer, RpcCall, View};

const ROUNDS: u32 = 300;
const TARGET: Duration = Duration::from_millis(2);

/// A view with full pages (100 rows) as the server returns them.
fn full_page_app(view: View) -> App {
    let mut app = loaded(view);
    let calls = app.update(Action::Refresh);
    for call in calls {
        let data = match call {
            RpcCall::Users(req, query) => RpcAnswer::Users(
                req,
                query,
                Ok(Page {
                    items: (0..100)
                        .map(|i| user(i, 10_000 + i as i64, 9_000 + 37 * i as i64))
                        .collect(),
                    next_cursor: Some("u-0099".into()),
                }),
            ),
            RpcCall::Payments(req, _) => RpcAnswer::Payments(
                req,
                Ok(Page {
                    items: payments().into_iter().cycle().take(100).collect(),
                    next_cursor: Some("100".into()),
                }),
            ),
            RpcCall::Rejected(req) => RpcAnswer::Rejected(
                req,
                Ok(Page {
                    items: rejected().into_iter().cycle().take(100).collect(),
                    next_cursor: Some("100".into()),
                }),
            ),
            RpcCall::Events(req) => RpcAnswer::Events(
                req,
                Ok(Page {
                    items: events().into_iter().cycle().take(100).collect(),
                    next_cursor: Some("evt_000000000001".into()),
                }),
            ),
            RpcCall::Runs => RpcAnswer::Runs(Ok((1..=24)
                .rev()
                .map(|i| run(i, 1000 + i * 13, false))
                .collect())),
            other => {
                answer(&mut app, vec![other]);
                continue;
            }
        };
        app.update(Action::Answer(data));
    }
    app
}

/// Redraw times of one view: (mean, median, max). The median is what the
/// target is checked against: on a shared machine the mean and max carry the
/// scheduler's hiccups, not the drawing.
fn measure(app: &App, width: u16, height: u16) -> (Duration, Duration, Duration) {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    let mut samples = Vec::with_capacity(ROUNDS as usize);
    for _ in 0..ROUNDS {
        // Clearing first makes every round a full repaint, not an empty diff.
        terminal.clear().unwrap();
        let start = Instant::now();
        terminal.draw(|f| tui_admin::ui::draw(f, app)).unwrap();
        samples.push(start.elapsed());
    }
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / ROUNDS;
    (mean, samples[samples.len() / 2], samples[samples.len() - 1])
}

fn report(name: &str, width: u16, height: u16, app: &App, over: &mut Vec<String>) {
    let (mean, median, max) = measure(app, width, height);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "FIGURE tui_redraw view={name} size={width}x{height} median_ms={:.3} mean_ms={:.3} max_ms={:.3} (target: <= 2 ms)",
        ms(median),
        ms(mean),
        ms(max),
    );
    if median > TARGET {
        over.push(format!("{name} at {width}x{height}: median {median:?}"));
    }
}

fn main() -> std::process::ExitCode {
    let mut over = Vec::new();
    for (width, height) in [(120, 40), (250, 70)] {
        for view in View::ALL {
            let app = full_page_app(view);
            report(&view.title().to_lowercase(), width, height, &app, &mut over);
        }
        let mut app = full_page_app(View::Users);
        let calls = app.update(Action::Open);
        answer(&mut app, calls);
        report("user_detail", width, height, &app, &mut over);
    }
    // Debug builds are several times slower; the target is for release.
    if !over.is_empty() && !cfg!(debug_assertions) {
        eprintln!("redraws over {TARGET:?}: {over:?}");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
