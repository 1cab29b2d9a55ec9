//! Redraw cost of every view with full pages (target: a full redraw ≤ 2 ms),
//! drawn into a `TestBackend`. `scripts/bench.sh` runs
//!   cargo run --release -p tui-admin --example redraw_bench
//! and reads the `FIGURE tui_redraw …` lines; the exit code is 1 if a view's
//! mean is over the target in a release build.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use billing_api::types::Page;
use common::*;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tui_admin::app::{Action, App, Command, Data, View};

const ROUNDS: u32 = 300;
const TARGET: Duration = Duration::from_millis(2);

/// A view with full pages (100 rows) as the server returns them.
fn full_page_app(view: View) -> App {
    let mut app = loaded(view);
    let commands = app.update(Action::Refresh);
    for command in commands {
        let data = match command {
            Command::Users(req) => Data::Users(
                req,
                Ok(Page {
                    items: (0..100)
                        .map(|i| user(i, 10_000 + i as i64, 9_000 + 37 * i as i64))
                        .collect(),
                    next_cursor: Some("u-0099".into()),
                }),
            ),
            Command::Payments(req, _) => Data::Payments(
                req,
                Ok(Page {
                    items: payments().into_iter().cycle().take(100).collect(),
                    next_cursor: Some("100".into()),
                }),
            ),
            Command::Rejected(req) => Data::Rejected(
                req,
                Ok(Page {
                    items: rejected().into_iter().cycle().take(100).collect(),
                    next_cursor: Some("100".into()),
                }),
            ),
            Command::Runs => Data::Runs(Ok((1..=24)
                .rev()
                .map(|i| run(i, 1000 + i * 13, false))
                .collect())),
            other => {
                answer(&mut app, vec![other]);
                continue;
            }
        };
        app.update(Action::Data(data));
    }
    app
}

fn measure(app: &App, width: u16, height: u16) -> (Duration, Duration) {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    let mut total = Duration::ZERO;
    let mut worst = Duration::ZERO;
    for _ in 0..ROUNDS {
        // Clearing first makes every round a full repaint, not an empty diff.
        terminal.clear().unwrap();
        let start = Instant::now();
        terminal.draw(|f| tui_admin::ui::draw(f, app)).unwrap();
        let took = start.elapsed();
        total += took;
        worst = worst.max(took);
    }
    (total / ROUNDS, worst)
}

fn main() -> std::process::ExitCode {
    let mut over = Vec::new();
    for (width, height) in [(120, 40), (250, 70)] {
        for view in View::ALL {
            let app = full_page_app(view);
            let (mean, worst) = measure(&app, width, height);
            println!(
                "FIGURE tui_redraw view={} size={width}x{height} mean_ms={:.3} max_ms={:.3} (target: <= 2 ms)",
                view.title().to_lowercase(),
                mean.as_secs_f64() * 1e3,
                worst.as_secs_f64() * 1e3,
            );
            if mean > TARGET {
                over.push(format!("{} at {width}x{height}: {mean:?}", view.title()));
            }
        }
        let mut app = full_page_app(View::Users);
        let commands = app.update(Action::Open);
        answer(&mut app, commands);
        let (mean, worst) = measure(&app, width, height);
        println!(
            "FIGURE tui_redraw view=user_detail size={width}x{height} mean_ms={:.3} max_ms={:.3} (target: <= 2 ms)",
            mean.as_secs_f64() * 1e3,
            worst.as_secs_f64() * 1e3,
        );
        if mean > TARGET {
            over.push(format!("user detail at {width}x{height}: {mean:?}"));
        }
    }
    // Debug builds are several times slower; the target is for release.
    if !over.is_empty() && !cfg!(debug_assertions) {
        eprintln!("redraws over {TARGET:?}: {over:?}");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
