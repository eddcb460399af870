//! Evaluation of inline dynamic values (spec/lockfile.md §6): `(<expression>)(event)` in a
//! fresh context with no host objects, 8 MiB of memory and 100 ms of CPU.

use std::time::{Duration, Instant};

use rquickjs::{Context, Runtime};

const MEMORY_LIMIT: usize = 8 << 20;
const TIME_LIMIT: Duration = Duration::from_millis(100);

/// Calls the pure function `expression` with `event` and returns its result as JSON.
pub fn evaluate(expression: &str, event: &serde_json::Value) -> Result<serde_json::Value, String> {
    let runtime = Runtime::new().map_err(|e| e.to_string())?;
    runtime.set_memory_limit(MEMORY_LIMIT);
    let deadline = Instant::now() + TIME_LIMIT;
    runtime.set_interrupt_handler(Some(Box::new(move || Instant::now() >= deadline)));
    let context = Context::full(&runtime).map_err(|e| e.to_string())?;
    let source = format!("JSON.stringify(({expression})({event}))");
    context.with(|ctx| {
        let result: rquickjs::Result<Option<String>> = ctx.eval(source);
        match result {
            Ok(Some(json)) => serde_json::from_str(&json).map_err(|e| e.to_string()),
            Ok(None) => Ok(serde_json::Value::Null),
            Err(rquickjs::Error::Exception) => {
                let thrown = ctx.catch();
                let message = thrown
                    .as_object()
                    .and_then(|o| o.get::<_, String>("message").ok())
                    .unwrap_or_else(|| "evaluation failed".to_string());
                if Instant::now() >= deadline {
                    Err(format!(
                        "inline expression exceeded {} ms",
                        TIME_LIMIT.as_millis()
                    ))
                } else {
                    Err(message)
                }
            }
            Err(e) => Err(e.to_string()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::evaluate;

    #[test]
    fn evaluates_with_the_event() {
        let event = serde_json::json!({"branch": "main"});
        let value = evaluate("(e) => e.branch === 'main' ? 'prod' : 'dev'", &event);
        assert_eq!(value, Ok(serde_json::json!("prod")));
    }

    #[test]
    fn endless_loop_is_stopped() {
        let error =
            evaluate("() => { while (true) {} }", &serde_json::json!({})).expect_err("stops");
        assert!(error.contains("exceeded"), "{error}");
    }
}
