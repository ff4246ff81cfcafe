//! An answer's end read for its token counts (`accounting::tap`), and an SSE stream with the
//! usage chunk taken out (`proxy::hidden_usage`): neither depends on how the bytes were split, and
//! nothing panics on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nomyo_router::accounting::tap::{find_tokens, Tap};
use nomyo_router::proxy::hidden_usage::HideUsage;
use nomyo_router::proxy::relay::Transform;

fn hidden(chunks: &[&[u8]]) -> Vec<u8> {
    let mut t = HideUsage::default();
    let mut out = Vec::new();
    for c in chunks {
        t.feed(c, &mut out);
    }
    t.finish(&mut out);
    out
}

fuzz_target!(|data: &[u8]| {
    let at = data.first().map_or(0, |&b| b as usize % (data.len() + 1));
    let (a, b) = data.split_at(at);
    // Within the tail's window, the counts are the whole input's, however it came.
    if data.len() <= 4096 {
        let mut whole = Tap::default();
        whole.observe(data);
        let mut split = Tap::default();
        split.observe(a);
        split.observe(b);
        let expected = find_tokens(data);
        assert_eq!(whole.tokens(), expected);
        assert_eq!(split.tokens(), expected);
    }
    let one = hidden(&[data]);
    assert_eq!(hidden(&[a, b]), one);
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(hidden(&bytes), one);
    // Only whole events are left out: the output is never longer than the input.
    assert!(one.len() <= data.len());
});
