use super::close::{CloseCode, is_permanent_close, truncate_close_reason};
use super::limits::{self, reconnect_delay_ms, recovery_window_ms};
use super::logs::{self, StepLogBatcher, split_line, truncation_marker};
use super::rate::{Admission, RateLimiter};
use super::reliability::{
    SeqCounter, SeqDecision, dropped_lines_marker, seq_ack_enabled, seq_decision,
};
use super::step_index::{JobHook, PREPARE, StepHook, StepSlot};
use super::*;

#[test]
fn reconnect_backoff_follows_the_formula() {
    let max = limits::DEFAULT_MAX_RECONNECT_DELAY_MS;
    assert_eq!(reconnect_delay_ms(0, 0.0, max), 1000);
    assert_eq!(reconnect_delay_ms(0, 0.999_999, max), 1499);
    assert_eq!(reconnect_delay_ms(1, 0.0, max), 1500);
    assert_eq!(reconnect_delay_ms(2, 0.5, max), 2812);
    assert_eq!(reconnect_delay_ms(9, 0.0, max), 38443);
    assert_eq!(reconnect_delay_ms(10, 0.0, max), 57665);
    assert_eq!(reconnect_delay_ms(10, 0.5, max), max);
    assert_eq!(reconnect_delay_ms(u32::MAX, 0.0, max), max);
    // Out-of-range samples are clamped, never a panic or a negative delay.
    assert_eq!(reconnect_delay_ms(0, f64::NAN, max), 1000);
    assert_eq!(reconnect_delay_ms(0, -3.0, max), 1000);
    assert_eq!(reconnect_delay_ms(0, 7.0, max), 1500);
    assert_eq!(reconnect_delay_ms(3, 0.0, 0), 0);
    assert_eq!(recovery_window_ms(max), 120_000);
    assert_eq!(limits::stale_threshold_ms(60_000, 2), 120_000);
    assert_eq!(limits::dispatch_ack_timeout_ms(10), 1000);
}

#[test]
fn close_codes_round_trip_and_know_their_meaning() {
    for code in CloseCode::ALL {
        assert_eq!(CloseCode::from_code(code.code()), Some(code));
    }
    assert_eq!(CloseCode::from_code(4999), None);
    assert!(is_permanent_close(4010));
    assert!(!is_permanent_close(4003));
    assert!(!is_permanent_close(1006));
    assert_eq!(
        CloseCode::DispatchAckTimeout.to_string(),
        "4031 (dispatch ack timeout)"
    );
    let long = "é".repeat(100);
    let cut = truncate_close_reason(&long);
    assert_eq!(cut.len(), 122);
    assert!(long.starts_with(cut));
}

#[test]
fn step_types_parse_and_print() {
    for text in [
        "step",
        "hook:onCancel",
        "hook:cleanup",
        "hook:onSuccess",
        "hook:onFailure",
        "hook:beforeStep",
        "hook:afterStep",
        "init:0",
        "init:12",
        "cache:restore",
        "cache:save",
    ] {
        let parsed = StepType::parse(text).unwrap_or_else(|| panic!("{text}"));
        assert_eq!(parsed.to_string(), text);
    }
    for text in [
        "",
        "init:",
        "init:+1",
        "init:x",
        "hook:onLunch",
        "Step",
        "init:99999999999",
    ] {
        assert_eq!(StepType::parse(text), None, "{text}");
    }
}

#[test]
fn step_type_is_read_from_every_legacy_place() {
    let frame = |extra: &str| {
        format!(
            r#"{{"type":"step.status","messageId":"m","runId":"r","jobId":"j","stepIndex":3000000,"stepName":"cleanup","state":"running","timestamp":1{extra}}}"#
        )
    };
    let step_type = |frame: String| match decode_agent_frame(&frame) {
        Ok(AgentMessage::StepStatus(s)) => s.effective_step_type(),
        other => panic!("{other:?}"),
    };
    assert_eq!(step_type(frame("")), StepType::Step);
    assert_eq!(
        step_type(frame(r#","step_type":"hook:cleanup""#)),
        StepType::HookCleanup
    );
    assert_eq!(
        step_type(frame(r#","data":{"step_type":"hook:onSuccess"}"#)),
        StepType::HookOnSuccess
    );
    assert_eq!(
        step_type(frame(r#","data":{"stepType":"init:2"}"#)),
        StepType::Init(2)
    );
}

#[test]
fn step_index_space_is_disjoint_and_round_trips() {
    let slots = [
        (StepSlot::Prepare, -1),
        (StepSlot::Step(0), 0),
        (StepSlot::Step(41), 41),
        (StepSlot::Init(2), 1_000_002),
        (StepSlot::BeforeStep(3), 2_000_006),
        (StepSlot::AfterStep(3), 2_000_007),
        (StepSlot::JobHook(JobHook::OnSuccess), 3_000_000),
        (StepSlot::JobHook(JobHook::OnFailure), 3_000_001),
        (StepSlot::JobHook(JobHook::OnCancel), 3_000_002),
        (StepSlot::JobHook(JobHook::Cleanup), 3_000_003),
        (StepSlot::StepHook(5, StepHook::OnCancel), 4_000_010),
        (StepSlot::StepHook(5, StepHook::Cleanup), 4_000_011),
        (StepSlot::Cache(1), 5_000_001),
    ];
    for (slot, index) in slots {
        assert_eq!(slot.index(), Some(index), "{slot:?}");
        assert_eq!(StepSlot::from_index(index), Some(slot), "{index}");
    }
    assert_eq!(PREPARE, -1);
    assert_eq!(StepSlot::Step(1_000_000).index(), None);
    assert_eq!(StepSlot::BeforeStep(500_000).index(), None);
    for index in [-2, 3_000_004, 6_000_000, i64::MAX, i64::MIN] {
        assert_eq!(StepSlot::from_index(index), None, "{index}");
    }
}

#[test]
fn long_lines_split_at_character_boundaries() {
    assert_eq!(split_line(""), vec![""]);
    assert_eq!(split_line("abc"), vec!["abc"]);
    // 'é' is two bytes: 32768 of them is exactly one piece; one more spills over.
    let line = "é".repeat(32_769);
    let pieces = split_line(&line);
    assert_eq!(pieces.len(), 2);
    assert_eq!(pieces[0].len(), limits::MAX_LOG_LINE_BYTES);
    assert_eq!(pieces[1], "é");
    // A 3-byte character straddling the limit moves whole into the next piece.
    let line = format!("{}€", "a".repeat(limits::MAX_LOG_LINE_BYTES - 1));
    let pieces = split_line(&line);
    assert_eq!(pieces[0].len(), limits::MAX_LOG_LINE_BYTES - 1);
    assert_eq!(pieces[1], "€");
}

#[test]
fn batches_flush_at_fifty_lines_or_after_the_delay() {
    let mut batcher = StepLogBatcher::new(logs::DEFAULT_MAX_LOG_SIZE_BYTES);
    assert_eq!(batcher.deadline(), None);
    let mut flushed = Vec::new();
    for i in 0..49 {
        flushed.extend(batcher.push(&format!("line {i}"), 1000));
    }
    assert!(flushed.is_empty());
    assert_eq!(batcher.deadline(), Some(1100));
    let batches = batcher.push("line 49", 1000);
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].len(), 50);
    assert_eq!(batcher.deadline(), None);

    assert!(batcher.push("late", 2000).is_empty());
    assert_eq!(batcher.poll(2099), None);
    assert_eq!(batcher.poll(2100), Some(vec!["late".to_owned()]));
    // A line arriving after a missed deadline first flushes the overdue batch.
    assert!(batcher.push("a", 3000).is_empty());
    assert_eq!(batcher.push("b", 3500), vec![vec!["a".to_owned()]]);
    assert_eq!(batcher.finish(), Some(vec!["b".to_owned()]));
    assert_eq!(batcher.finish(), None);
    assert_eq!(batcher.bytes_streamed(), 10 * 6 + 40 * 7 + 4 + 1 + 1);
}

#[test]
fn batches_flush_at_256_kib() {
    let mut batcher = StepLogBatcher::new(logs::DEFAULT_MAX_LOG_SIZE_BYTES);
    let line = "x".repeat(64 * 1024);
    assert!(batcher.push(&line, 0).is_empty());
    assert!(batcher.push(&line, 0).is_empty());
    assert!(batcher.push(&line, 0).is_empty());
    let batches = batcher.push(&line, 0);
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].len(), 4);
}

#[test]
fn the_step_cap_truncates_once_and_discards_the_rest() {
    let mut batcher = StepLogBatcher::new(10);
    assert!(batcher.push("123456", 0).is_empty());
    // The running total (6) is below the cap when this line arrives, so it is sent whole.
    assert!(batcher.push("789012", 0).is_empty());
    let batches = batcher.push("over", 0);
    assert_eq!(
        batches,
        vec![vec![
            "123456".to_owned(),
            "789012".to_owned(),
            truncation_marker(10)
        ]]
    );
    assert_eq!(
        truncation_marker(10),
        "[TRUNCATED: log output exceeded 10 bytes]"
    );
    assert!(batcher.is_truncated());
    assert!(batcher.push("more", 0).is_empty());
    assert_eq!(batcher.finish(), None);
    assert_eq!(batcher.bytes_streamed(), 12);
}

#[test]
fn rate_limiter_debits_both_buckets_and_asks_to_wait() {
    let mut limiter = RateLimiter::new(0);
    for _ in 0..200 {
        assert_eq!(limiter.admit(10, 0), Admission::Admit);
    }
    assert_eq!(limiter.admit(10, 0), Admission::WaitMs(10));
    assert_eq!(limiter.admit(10, 10), Admission::Admit);
    assert_eq!(
        limiter.admit(limits::RATE_BYTES_CAPACITY + 1, 10),
        Admission::TooLarge
    );

    let mut limiter = RateLimiter::new(1000);
    assert_eq!(
        limiter.admit(limits::RATE_BYTES_CAPACITY, 1000),
        Admission::Admit
    );
    // 512 KiB refill per second: 1 MiB takes two seconds.
    assert_eq!(limiter.admit(1024 * 1024, 1000), Admission::WaitMs(2000));
    // A clock going backwards neither panics nor refills.
    assert_eq!(limiter.admit(1024 * 1024, 0), Admission::WaitMs(2000));
    assert_eq!(limiter.admit(1024 * 1024, 3000), Admission::Admit);
}

#[test]
fn seq_ack_helpers() {
    let caps = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(seq_ack_enabled(
        &caps(&["x", "seq-ack"]),
        &caps(&["seq-ack"])
    ));
    assert!(!seq_ack_enabled(&caps(&["seq-ack"]), &caps(&[])));
    assert_eq!(seq_decision(Some(5), 5), SeqDecision::Duplicate);
    assert_eq!(seq_decision(Some(7), 5), SeqDecision::Apply);
    assert_eq!(seq_decision(None, 5), SeqDecision::Apply);
    assert_eq!(
        dropped_lines_marker(120),
        "[120 log lines dropped while the orchestrator was unreachable]"
    );
    let mut counter = SeqCounter::new();
    assert_eq!(
        (counter.next_seq(), counter.next_seq(), counter.last()),
        (1, 2, 2)
    );
}

#[test]
fn reliable_frames_carry_seq_and_others_do_not() {
    let mut ack = AgentMessage::JobAck(JobAck {
        message_id: "m".into(),
        run_id: "r".into(),
        job_id: "j".into(),
        timestamp: 1,
        seq: None,
    });
    assert!(ack.is_reliable());
    assert!(ack.set_seq(9));
    assert_eq!(ack.seq(), Some(9));
    assert_eq!(ack.job_id(), Some("j"));
    let mut beat = AgentMessage::Heartbeat(Heartbeat { timestamp: 1 });
    assert!(!beat.is_reliable());
    assert!(!beat.set_seq(9));
    assert!(!beat.is_rate_limited());
    assert_eq!(beat.encode(), r#"{"type":"heartbeat","timestamp":1}"#);
}

#[test]
fn frame_errors_map_to_close_codes() {
    let err = FrameError::UnknownType {
        message_type: "x".repeat(300),
    };
    assert_eq!(err.close_code(), CloseCode::InvalidMessage);
    assert!(err.close_reason().len() <= close::MAX_CLOSE_REASON_BYTES);
    assert_eq!(
        FrameError::ProtocolVersion { version: -1 }.close_code(),
        CloseCode::ProtocolError
    );
}

#[test]
fn no_input_panics() {
    let frames = [
        "",
        "null",
        "{}",
        "{\"type\":null}",
        "{\"type\":\"agent.register\"}",
        "{\"type\":\"job.status\",\"state\":{}}",
        "\u{0}",
        "{\"type\":\"log.chunk\",\"lines\":[1]}",
        &"[".repeat(10_000),
        &format!(
            "{{\"type\":\"heartbeat\",\"timestamp\":1{}}}",
            "0".repeat(400)
        ),
    ];
    for frame in frames {
        assert!(decode_agent_frame(frame).is_err(), "{frame:.40}");
        assert!(decode_orchestrator_frame(frame).is_err(), "{frame:.40}");
    }
}
