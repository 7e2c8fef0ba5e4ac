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
