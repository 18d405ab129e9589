//! The pickle opcodes SB3's files use, named as in CPython's `pickletools`: the one list the
//! reader understands and the writer writes.

/// The protocol.
pub const PROTO: u8 = 0x80;
/// A frame's length (protocol 4).
pub const FRAME: u8 = 0x95;
/// The end: the value on top.
pub const STOP: u8 = b'.';
/// A mark on the stack.
pub const MARK: u8 = b'(';
/// Discards the top.
pub const POP: u8 = b'0';
/// Discards up to the mark.
pub const POP_MARK: u8 = b'1';
/// Repeats the top.
pub const DUP: u8 = b'2';
/// `None`.
pub const NONE: u8 = b'N';
/// `True`.
pub const NEWTRUE: u8 = 0x88;
/// `False`.
pub const NEWFALSE: u8 = 0x89;
/// A 4-byte signed integer.
pub const BININT: u8 = b'J';
/// A 1-byte unsigned integer.
pub const BININT1: u8 = b'K';
/// A 2-byte unsigned integer.
pub const BININT2: u8 = b'M';
/// An integer of up to 255 bytes.
pub const LONG1: u8 = 0x8a;
/// An integer of a 4-byte length.
pub const LONG4: u8 = 0x8b;
/// An integer (or a bool) as text.
pub const INT: u8 = b'I';
/// An 8-byte big-endian float.
pub const BINFLOAT: u8 = b'G';
/// A UTF-8 string of a 4-byte length.
pub const BINUNICODE: u8 = b'X';
/// A UTF-8 string of a 1-byte length.
pub const SHORT_BINUNICODE: u8 = 0x8c;
/// A UTF-8 string of an 8-byte length.
pub const BINUNICODE8: u8 = 0x8d;
/// Bytes of a 4-byte length.
pub const BINBYTES: u8 = b'B';
/// A protocol-0 string of a 4-byte length.
pub const BINSTRING: u8 = b'T';
/// Bytes of a 1-byte length.
pub const SHORT_BINBYTES: u8 = b'C';
/// A protocol-0 string of a 1-byte length.
pub const SHORT_BINSTRING: u8 = b'U';
/// Bytes of an 8-byte length.
pub const BINBYTES8: u8 = 0x8e;
/// A bytearray of an 8-byte length.
pub const BYTEARRAY8: u8 = 0x96;
/// `()`.
pub const EMPTY_TUPLE: u8 = b')';
/// A tuple of the values above the mark.
pub const TUPLE: u8 = b't';
/// A tuple of the top value.
pub const TUPLE1: u8 = 0x85;
/// A tuple of the top two.
pub const TUPLE2: u8 = 0x86;
/// A tuple of the top three.
pub const TUPLE3: u8 = 0x87;
/// `[]`.
pub const EMPTY_LIST: u8 = b']';
/// A list of the values above the mark.
pub const LIST: u8 = b'l';
/// Appends the top to the list below it.
pub const APPEND: u8 = b'a';
/// Appends the values above the mark.
pub const APPENDS: u8 = b'e';
/// `{}`.
pub const EMPTY_DICT: u8 = b'}';
/// A dict of the pairs above the mark.
pub const DICT: u8 = b'd';
/// Sets a key and value on the dict below.
pub const SETITEM: u8 = b's';
/// Sets the pairs above the mark.
pub const SETITEMS: u8 = b'u';
/// An empty set.
pub const EMPTY_SET: u8 = 0x8f;
/// Adds the values above the mark to a set.
pub const ADDITEMS: u8 = 0x90;
/// A frozenset of the values above the mark.
pub const FROZENSET: u8 = 0x91;
/// A module's attribute, named on two lines.
pub const GLOBAL: u8 = b'c';
/// A module's attribute named by the top two strings.
pub const STACK_GLOBAL: u8 = 0x93;
/// Calls the callable with the tuple.
pub const REDUCE: u8 = b'R';
/// `cls.__new__(cls, *args)`.
pub const NEWOBJ: u8 = 0x81;
/// `cls.__new__(cls, *args, **kwargs)`.
pub const NEWOBJ_EX: u8 = 0x92;
/// Sets an object's state.
pub const BUILD: u8 = b'b';
/// A persistent id (torch's storages).
pub const BINPERSID: u8 = b'Q';
/// Memoises the top (1-byte key).
pub const BINPUT: u8 = b'q';
/// Memoises the top (4-byte key).
pub const LONG_BINPUT: u8 = b'r';
/// Memoises the top (next key).
pub const MEMOIZE: u8 = 0x94;
/// Memoises the top (key as text).
pub const PUT: u8 = b'p';
/// A memoised value (1-byte key).
pub const BINGET: u8 = b'h';
/// A memoised value (4-byte key).
pub const LONG_BINGET: u8 = b'j';
/// A memoised value (key as text).
pub const GET: u8 = b'g';
