//! Byte classes the matchers test in their inner loops: one table read
//! each, built at compile time.

const LOCAL: u8 = 1;
const HOST: u8 = 2;
const VALUE: u8 = 4;
const TOKEN: u8 = 8;

static CLASSES: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let alnum = b.is_ascii_alphanumeric();
        let mut class = 0;
        if alnum || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-') {
            class |= LOCAL;
        }
        if alnum || matches!(b, b'-' | b'.') {
            class |= HOST;
        }
        if b.is_ascii_graphic()
            && !matches!(
                b,
                b'"' | b'\''
                    | b'`'
                    | b','
                    | b';'
                    | b'('
                    | b')'
                    | b'['
                    | b']'
                    | b'{'
                    | b'}'
                    | b'<'
                    | b'>'
            )
        {
            class |= VALUE;
        }
        if alnum || matches!(b, b'_' | b'-') {
            class |= TOKEN;
        }
        table[i] = class;
        i += 1;
    }
    table
}

fn is(b: u8, class: u8) -> bool {
    CLASSES[usize::from(b)] & class != 0
}

/// A byte of an e-mail address's local part.
pub(super) fn is_local(b: u8) -> bool {
    is(b, LOCAL)
}

/// A byte of a host name.
pub(super) fn is_host(b: u8) -> bool {
    is(b, HOST)
}

/// A byte of an unquoted assigned value: printable, no quote, bracket or
/// separator.
pub(super) fn is_value(b: u8) -> bool {
    is(b, VALUE)
}

/// A byte of a base64url token.
pub(super) fn is_token_char(b: u8) -> bool {
    is(b, TOKEN)
}

/// How many bytes of `text` from its start are in `class`, at most `max`.
#[inline]
pub(super) fn run_len(text: &[u8], max: usize, class: impl Fn(u8) -> bool) -> usize {
    let text = &text[..text.len().min(max)];
    text.iter().position(|b| !class(*b)).unwrap_or(text.len())
}

/// Where `needle` first occurs in `text`: its last byte is looked for eight
/// bytes at a time, then the rest compared.
pub(super) fn find(text: &[u8], needle: &[u8]) -> Option<usize> {
    let (&last, _) = needle.split_last()?;
    let mut from = needle.len() - 1;
    while from < text.len() {
        let end = from + find_byte(&text[from..], last)? + 1;
        let start = end - needle.len();
        if text[start..end] == *needle {
            return Some(start);
        }
        from = end;
    }
    None
}

/// Where `byte` first occurs in `text`.
pub(super) fn find_byte(text: &[u8], byte: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let pattern = ONES * u64::from(byte);
    let mut base = 0;
    for chunk in text.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        // A zero byte in `word ^ pattern` is where `byte` is.
        let x = u64::from_le_bytes(word) ^ pattern;
        if x.wrapping_sub(ONES) & !x & HIGHS != 0 {
            break;
        }
        base += 8;
    }
    text[base..]
        .iter()
        .position(|b| *b == byte)
        .map(|k| base + k)
}
