//! Detector frames as the European Spallation Source streams them over Kafka: FlatBuffers `ad00` (an EPICS
//! areaDetector array, what areaDetector's Kafka plugin sends) and `f144` (a logged value, e.g. the rotation
//! stage's angle, on its own topic). Readers verify the buffer before touching it, so any bytes give an
//! [`EssError`], never a panic; writers are for MASS and for tests.
//!
//! The table layouts follow the schemas of ess-dmsc/streaming-data-types (BSD-2-Clause):
//! `schemas/ad00_area_detector_array.fbs` and `schemas/f144_logdata.fbs`; the accessors are written against the
//! `flatbuffers` runtime as `flatc` would generate them (field i at vtable offset 4 + 2 i).
//!
//! # A frame in `ad00`
//! `dimensions` is the array's shape, `[rows, cols]` (a leading 1 is allowed); `data_type` uint8, uint16 or
//! float32; `id` the frame index; `timestamp` ns since the epoch. What the project's envelope carries in its
//! frame header travels as attributes: `angle` (degrees; any numeric type), `frame_type` (`projection`,
//! `flat` or `dark` as a c_string, or 0/1/2), `epoch` (the flat/dark epoch), `first_row` and `detector_rows`
//! (a row band). Without an `angle` attribute the angle is the rotation stage's, from its `f144` stream at the
//! frame's timestamp ([`StageLog`]).

use flatbuffers::{
    FlatBufferBuilder, Follow, ForwardsUOffset, InvalidFlatbuffer, Table, Vector, Verifiable,
    Verifier, VerifierOptions, WIPOffset,
};

use super::frame::{FrameInfo, FrameType};
use super::message::Dtype;

/// `ad00` and `f144` file identifiers (bytes 4..8 of the buffer).
pub const AD00_ID: &str = "ad00";
pub const F144_ID: &str = "f144";

/// Why an ESS message could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EssError {
    #[error("not a {0} buffer (file identifier {1:?})")]
    Identifier(&'static str, String),
    #[error("malformed {0} flatbuffer: {1}")]
    Invalid(&'static str, String),
    #[error("ad00 frame: {0}")]
    Frame(String),
    #[error("f144: {0}")]
    Value(String),
}

/// `DType` of the ad00 schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum Ad00Type {
    Int8 = 0,
    Uint8 = 1,
    Int16 = 2,
    Uint16 = 3,
    Int32 = 4,
    Uint32 = 5,
    Int64 = 6,
    Uint64 = 7,
    Float32 = 8,
    Float64 = 9,
    CString = 10,
}

impl Ad00Type {
    pub fn from_i8(v: i8) -> Option<Self> {
        use Ad00Type::*;
        Some(match v {
            0 => Int8,
            1 => Uint8,
            2 => Int16,
            3 => Uint16,
            4 => Int32,
            5 => Uint32,
            6 => Int64,
            7 => Uint64,
            8 => Float32,
            9 => Float64,
            10 => CString,
            _ => return None,
        })
    }

    /// Bytes per element (1 for a c_string's characters).
    pub fn size(self) -> usize {
        use Ad00Type::*;
        match self {
            Int8 | Uint8 | CString => 1,
            Int16 | Uint16 => 2,
            Int32 | Uint32 | Float32 => 4,
            Int64 | Uint64 | Float64 => 8,
        }
    }

    /// The first element of `data` as f64 (None: too short, or a c_string).
    pub fn first_as_f64(self, data: &[u8]) -> Option<f64> {
        use Ad00Type::*;
        let b = data.get(..self.size())?;
        Some(match self {
            Int8 => b[0] as i8 as f64,
            Uint8 => b[0] as f64,
            Int16 => i16::from_le_bytes([b[0], b[1]]) as f64,
            Uint16 => u16::from_le_bytes([b[0], b[1]]) as f64,
            Int32 => i32::from_le_bytes(b.try_into().ok()?) as f64,
            Uint32 => u32::from_le_bytes(b.try_into().ok()?) as f64,
            Int64 => i64::from_le_bytes(b.try_into().ok()?) as f64,
            Uint64 => u64::from_le_bytes(b.try_into().ok()?) as f64,
            Float32 => f32::from_le_bytes(b.try_into().ok()?) as f64,
            Float64 => f64::from_le_bytes(b.try_into().ok()?),
            CString => return None,
        })
    }
}

/// `ad00_ADArray` as read from a verified buffer.
#[derive(Clone, Copy)]
struct Ad00Table<'a>(Table<'a>);

/// `Attribute` as read from a verified buffer.
#[derive(Clone, Copy)]
struct AttributeTable<'a>(Table<'a>);

impl<'a> Follow<'a> for Ad00Table<'a> {
    type Inner = Self;
    unsafe fn follow(buf: &'a [u8], loc: usize) -> Self {
        // SAFETY: the caller verified the buffer (as generated code does).
        Ad00Table(unsafe { Table::new(buf, loc) })
    }
}

impl<'a> Follow<'a> for AttributeTable<'a> {
    type Inner = Self;
    unsafe fn follow(buf: &'a [u8], loc: usize) -> Self {
        // SAFETY: as above.
        AttributeTable(unsafe { Table::new(buf, loc) })
    }
}

impl Verifiable for Ad00Table<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<ForwardsUOffset<&str>>("source_name", 4, true)?
            .visit_field::<i32>("id", 6, false)?
            .visit_field::<i64>("timestamp", 8, false)?
            .visit_field::<ForwardsUOffset<Vector<i64>>>("dimensions", 10, true)?
            .visit_field::<i8>("data_type", 12, false)?
            .visit_field::<ForwardsUOffset<Vector<u8>>>("data", 14, true)?
            .visit_field::<ForwardsUOffset<Vector<ForwardsUOffset<AttributeTable>>>>(
                "attributes",
                16,
                false,
            )?
            .finish();
        Ok(())
    }
}

impl Verifiable for AttributeTable<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<ForwardsUOffset<&str>>("name", 4, true)?
            .visit_field::<ForwardsUOffset<&str>>("description", 6, false)?
            .visit_field::<ForwardsUOffset<&str>>("source", 8, false)?
            .visit_field::<i8>("data_type", 10, false)?
            .visit_field::<ForwardsUOffset<Vector<u8>>>("data", 12, true)?
            .finish();
        Ok(())
    }
}

/// An attribute of an ad00 array.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ad00Attribute<'a> {
    pub name: &'a str,
    pub data_type: Option<Ad00Type>,
    pub data: &'a [u8],
}

impl Ad00Attribute<'_> {
    /// The value as a number (None: a c_string or no data).
    pub fn number(&self) -> Option<f64> {
        self.data_type?.first_as_f64(self.data)
    }

    /// The value as text (a c_string, up to its first NUL).
    pub fn text(&self) -> Option<&str> {
        if self.data_type != Some(Ad00Type::CString) {
            return None;
        }
        let end = self
            .data
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.data.len());
        std::str::from_utf8(&self.data[..end]).ok()
    }
}

/// A decoded ad00 array, borrowing the message.
#[derive(Debug, Clone, PartialEq)]
pub struct Ad00<'a> {
    pub source_name: &'a str,
    pub id: i32,
    pub timestamp_ns: i64,
    pub dimensions: Vec<i64>,
    /// None: a data type this build does not know (a newer schema).
    pub data_type: Option<Ad00Type>,
    pub data: &'a [u8],
    pub attributes: Vec<Ad00Attribute<'a>>,
}

fn verifier_options() -> VerifierOptions {
    VerifierOptions {
        // A 2048 x 2048 float frame and then some.
        max_apparent_size: 1 << 30,
        ..Default::default()
    }
}

fn has_identifier(bytes: &[u8], id: &str) -> bool {
    bytes.len() >= 8 && &bytes[4..8] == id.as_bytes()
}

/// Whether `bytes` is an ad00 buffer (by its file identifier).
pub fn is_ad00(bytes: &[u8]) -> bool {
    has_identifier(bytes, AD00_ID)
}

/// Whether `bytes` is an f144 buffer.
pub fn is_f144(bytes: &[u8]) -> bool {
    has_identifier(bytes, F144_ID)
}

/// Read an ad00 buffer (verified first).
pub fn decode_ad00(bytes: &[u8]) -> Result<Ad00<'_>, EssError> {
    if !is_ad00(bytes) {
        let id = bytes
            .get(4..8)
            .map(|b| String::from_utf8_lossy(b).into_owned());
        return Err(EssError::Identifier("ad00", id.unwrap_or_default()));
    }
    let t = flatbuffers::root_with_opts::<Ad00Table>(&verifier_options(), bytes)
        .map_err(|e| EssError::Invalid("ad00", e.to_string()))?;
    // SAFETY (all `get`s below): the verifier checked every field's type and bounds; required ones exist.
    let t = t.0;
    let source_name = unsafe { t.get::<ForwardsUOffset<&str>>(4, None) }.unwrap_or_default();
    let id = unsafe { t.get::<i32>(6, Some(0)) }.unwrap_or(0);
    let timestamp_ns = unsafe { t.get::<i64>(8, Some(0)) }.unwrap_or(0);
    let dimensions = unsafe { t.get::<ForwardsUOffset<Vector<i64>>>(10, None) }
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    let data_type = Ad00Type::from_i8(unsafe { t.get::<i8>(12, Some(0)) }.unwrap_or(0));
    let data = unsafe { t.get::<ForwardsUOffset<Vector<u8>>>(14, None) }
        .map(|v| v.bytes())
        .unwrap_or_default();
    let attributes =
        unsafe { t.get::<ForwardsUOffset<Vector<ForwardsUOffset<AttributeTable>>>>(16, None) }
            .map(|v| {
                v.iter()
                    .map(|a| {
                        let a = a.0;
                        Ad00Attribute {
                            name: unsafe { a.get::<ForwardsUOffset<&str>>(4, None) }
                                .unwrap_or_default(),
                            data_type: Ad00Type::from_i8(
                                unsafe { a.get::<i8>(10, Some(0)) }.unwrap_or(0),
                            ),
                            data: unsafe { a.get::<ForwardsUOffset<Vector<u8>>>(12, None) }
                                .map(|d| d.bytes())
                                .unwrap_or_default(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
    Ok(Ad00 {
        source_name,
        id,
        timestamp_ns,
        dimensions,
        data_type,
        data,
        attributes,
    })
}

impl<'a> Ad00<'a> {
    pub fn attribute(&self, name: &str) -> Option<&Ad00Attribute<'a>> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// The detector frame this array is: its fields (the angle from the `angle` attribute, else `stage`'s
    /// position at the frame's timestamp), rows, cols, pixel dtype and pixel bytes.
    pub fn frame(&self, stage: Option<&StageLog>) -> Result<Ad00Frame<'a>, EssError> {
        let (rows, cols, dtype) = self.shape()?;
        let frame_type = self.frame_type()?;
        let angle_deg = self.angle(frame_type, stage)?;
        let first_row = self.whole("first_row", 0, u32::MAX as u64)? as u32;
        let detector_rows = self.whole(
            "detector_rows",
            first_row as u64 + rows as u64,
            u32::MAX as u64,
        )?;
        if first_row as u64 + rows as u64 > detector_rows {
            return Err(EssError::Frame(format!(
                "rows {first_row}..{} outside a detector of {detector_rows} rows",
                first_row as u64 + rows as u64
            )));
        }
        Ok(Ad00Frame {
            info: FrameInfo {
                index: self.id.max(0) as u64,
                angle_deg,
                frame_type,
                epoch: self.whole("epoch", 0, u16::MAX as u64)? as u16,
                first_row,
                detector_rows: detector_rows as u32,
            },
            rows,
            cols,
            dtype,
            pixels: self.data,
            timestamp_ns: self.timestamp_ns,
        })
    }

    /// Rows, columns and pixel dtype, checked against the data's length.
    fn shape(&self) -> Result<(u32, u32, Dtype), EssError> {
        let bad = |m: String| Err(EssError::Frame(m));
        let dims: Vec<i64> = match self.dimensions.as_slice() {
            [1, r, c] => vec![*r, *c],
            d => d.to_vec(),
        };
        let [rows, cols] = dims[..] else {
            return bad(format!(
                "dimensions {:?} (a frame is [rows, cols])",
                self.dimensions
            ));
        };
        if !(1..=u32::MAX as i64).contains(&rows) || !(1..=u32::MAX as i64).contains(&cols) {
            return bad(format!("dimensions {:?}", self.dimensions));
        }
        let dtype = match self.data_type {
            Some(Ad00Type::Uint16) => Dtype::U16,
            Some(Ad00Type::Uint8) => Dtype::U8,
            Some(Ad00Type::Float32) => Dtype::F32,
            other => {
                return bad(format!(
                    "data type {other:?} (frames are uint16, uint8 or float32)"
                ))
            }
        };
        let want = (rows as u128) * (cols as u128) * dtype.size() as u128;
        if self.data.len() as u128 != want {
            return bad(format!(
                "{} data bytes for {rows} x {cols} {dtype:?} ({want} expected)",
                self.data.len()
            ));
        }
        Ok((rows as u32, cols as u32, dtype))
    }

    /// The `frame_type` attribute: a name or 0/1/2; a projection without one.
    fn frame_type(&self) -> Result<FrameType, EssError> {
        let Some(a) = self.attribute("frame_type") else {
            return Ok(FrameType::Projection);
        };
        match (a.text(), a.number()) {
            (Some("projection"), _) => Ok(FrameType::Projection),
            (Some("flat"), _) => Ok(FrameType::Flat),
            (Some("dark"), _) => Ok(FrameType::Dark),
            (None, Some(v)) if v.fract() == 0.0 && (0.0..=2.0).contains(&v) => {
                Ok(FrameType::from_u8(v as u8).expect("0..=2"))
            }
            (t, v) => Err(EssError::Frame(format!(
                "frame_type {t:?} {v:?} (projection, flat or dark)"
            ))),
        }
    }

    /// The angle: the attribute's, else (a projection) the stage's at the frame's time; 0 for flats and darks.
    fn angle(&self, frame_type: FrameType, stage: Option<&StageLog>) -> Result<f64, EssError> {
        let number = self.attribute("angle").and_then(|a| a.number());
        match (number, frame_type) {
            (Some(a), _) if a.is_finite() => Ok(a),
            (Some(a), _) => Err(EssError::Frame(format!("angle {a}"))),
            (None, FrameType::Projection) => match stage {
                Some(s) => s.at(self.timestamp_ns).map_err(EssError::Frame),
                None => Err(EssError::Frame(
                    "no angle attribute and no rotation-stage (f144) stream to take it from".into(),
                )),
            },
            (None, _) => Ok(0.0),
        }
    }

    /// A whole-number attribute within `0..=max` (`default` when absent).
    fn whole(&self, name: &str, default: u64, max: u64) -> Result<u64, EssError> {
        match self.attribute(name).and_then(|a| a.number()) {
            None => Ok(default),
            Some(v) if v.fract() == 0.0 && (0.0..=max as f64).contains(&v) => Ok(v as u64),
            Some(v) => Err(EssError::Frame(format!("{name} {v}"))),
        }
    }
}

/// An ad00 array read as a detector frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ad00Frame<'a> {
    pub info: FrameInfo,
    pub rows: u32,
    pub cols: u32,
    pub dtype: Dtype,
    pub pixels: &'a [u8],
    pub timestamp_ns: i64,
}

/// An attribute to write.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    F64(f64),
    I64(i64),
    Text(String),
}

/// Write an ad00 buffer into `out` (cleared).
pub fn encode_ad00(a: &Ad00<'_>, extra: &[(&str, AttributeValue)], out: &mut Vec<u8>) {
    let mut b = FlatBufferBuilder::with_capacity(a.data.len() + 1024);
    let mut attrs: Vec<WIPOffset<flatbuffers::TableFinishedWIPOffset>> = Vec::new();
    let write_attr = |b: &mut FlatBufferBuilder, name: &str, dtype: i8, data: &[u8]| {
        let name = b.create_string(name);
        let data = b.create_vector(data);
        let t = b.start_table();
        b.push_slot_always(4, name);
        b.push_slot::<i8>(10, dtype, 0);
        b.push_slot_always(12, data);
        b.end_table(t)
    };
    for at in &a.attributes {
        let dtype = at.data_type.map_or(0, |d| d as i8);
        attrs.push(write_attr(&mut b, at.name, dtype, at.data));
    }
    for (name, v) in extra {
        let (dtype, data) = match v {
            AttributeValue::F64(x) => (Ad00Type::Float64, x.to_le_bytes().to_vec()),
            AttributeValue::I64(x) => (Ad00Type::Int64, x.to_le_bytes().to_vec()),
            AttributeValue::Text(s) => (Ad00Type::CString, s.as_bytes().to_vec()),
        };
        attrs.push(write_attr(&mut b, name, dtype as i8, &data));
    }
    let source = b.create_string(a.source_name);
    let dims = b.create_vector(&a.dimensions);
    let data = b.create_vector(a.data);
    let attrs = b.create_vector(&attrs);
    let t = b.start_table();
    b.push_slot_always(4, source);
    b.push_slot::<i32>(6, a.id, 0);
    b.push_slot::<i64>(8, a.timestamp_ns, 0);
    b.push_slot_always(10, dims);
    b.push_slot::<i8>(12, a.data_type.map_or(0, |d| d as i8), 0);
    b.push_slot_always(14, data);
    b.push_slot_always(16, attrs);
    let root = b.end_table(t);
    b.finish(root, Some(AD00_ID));
    out.clear();
    out.extend_from_slice(b.finished_data());
}

/// `LogData` of f144.
#[derive(Clone, Copy)]
struct LogDataTable<'a>(Table<'a>);

impl<'a> Follow<'a> for LogDataTable<'a> {
    type Inner = Self;
    unsafe fn follow(buf: &'a [u8], loc: usize) -> Self {
        // SAFETY: as for ad00.
        LogDataTable(unsafe { Table::new(buf, loc) })
    }
}

/// The scalar tables of f144's `Value` union (`{ value: T }`, union types 1-10).
struct ScalarTable<T>(std::marker::PhantomData<T>);

impl<T: Verifiable> Verifiable for ScalarTable<T> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<T>("value", 4, false)?
            .finish();
        Ok(())
    }
}

impl Verifiable for LogDataTable<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<ForwardsUOffset<&str>>("source_name", 4, true)?
            .visit_field::<i64>("timestamp", 6, false)?
            .visit_union::<u8, _>("value_type", 8, "value", 10, true, |key, v, pos| {
                let table = |v: &mut Verifier, pos| -> Result<(), InvalidFlatbuffer> {
                    match key {
                        1 => ForwardsUOffset::<ScalarTable<i8>>::run_verifier(v, pos),
                        2 => ForwardsUOffset::<ScalarTable<u8>>::run_verifier(v, pos),
                        3 => ForwardsUOffset::<ScalarTable<i16>>::run_verifier(v, pos),
                        4 => ForwardsUOffset::<ScalarTable<u16>>::run_verifier(v, pos),
                        5 => ForwardsUOffset::<ScalarTable<i32>>::run_verifier(v, pos),
                        6 => ForwardsUOffset::<ScalarTable<u32>>::run_verifier(v, pos),
                        7 => ForwardsUOffset::<ScalarTable<i64>>::run_verifier(v, pos),
                        8 => ForwardsUOffset::<ScalarTable<u64>>::run_verifier(v, pos),
                        9 => ForwardsUOffset::<ScalarTable<f32>>::run_verifier(v, pos),
                        10 => ForwardsUOffset::<ScalarTable<f64>>::run_verifier(v, pos),
                        // Arrays (11-20): a table, checked as one; the value is refused when read.
                        11..=20 => ForwardsUOffset::<ScalarTable<u8>>::run_verifier(v, pos),
                        _ => InvalidFlatbuffer::new_inconsistent_union("value_type", "value"),
                    }
                };
                table(v, pos)
            })?
            .finish();
        Ok(())
    }
}

/// A logged scalar value (f144), e.g. the rotation stage's angle.
#[derive(Debug, Clone, PartialEq)]
pub struct LogValue<'a> {
    pub source_name: &'a str,
    pub timestamp_ns: i64,
    pub value: f64,
}

/// Read an f144 buffer holding a scalar (arrays are refused: a stage position is one number).
pub fn decode_f144(bytes: &[u8]) -> Result<LogValue<'_>, EssError> {
    if !is_f144(bytes) {
        let id = bytes
            .get(4..8)
            .map(|b| String::from_utf8_lossy(b).into_owned());
        return Err(EssError::Identifier("f144", id.unwrap_or_default()));
    }
    let t = flatbuffers::root_with_opts::<LogDataTable>(&verifier_options(), bytes)
        .map_err(|e| EssError::Invalid("f144", e.to_string()))?
        .0;
    // SAFETY: verified above, the union's table by its type.
    let source_name = unsafe { t.get::<ForwardsUOffset<&str>>(4, None) }.unwrap_or_default();
    let timestamp_ns = unsafe { t.get::<i64>(6, Some(0)) }.unwrap_or(0);
    let key = unsafe { t.get::<u8>(8, Some(0)) }.unwrap_or(0);
    if !(1..=10).contains(&key) {
        return Err(EssError::Value(format!("value type {key} is not a scalar")));
    }
    let table = unsafe { t.get::<ForwardsUOffset<Table>>(10, None) }
        .ok_or_else(|| EssError::Value("no value".into()))?;
    // SAFETY: the verifier checked the union's table as the type `key` names.
    let value = unsafe {
        match key {
            1 => table.get::<i8>(4, Some(0)).map(|v| v as f64),
            2 => table.get::<u8>(4, Some(0)).map(|v| v as f64),
            3 => table.get::<i16>(4, Some(0)).map(|v| v as f64),
            4 => table.get::<u16>(4, Some(0)).map(|v| v as f64),
            5 => table.get::<i32>(4, Some(0)).map(|v| v as f64),
            6 => table.get::<u32>(4, Some(0)).map(|v| v as f64),
            7 => table.get::<i64>(4, Some(0)).map(|v| v as f64),
            8 => table.get::<u64>(4, Some(0)).map(|v| v as f64),
            9 => table.get::<f32>(4, Some(0.0)).map(|v| v as f64),
            10 => table.get::<f64>(4, Some(0.0)),
            k => return Err(EssError::Value(format!("value type {k} is not a scalar"))),
        }
    }
    .unwrap_or(0.0);
    Ok(LogValue {
        source_name,
        timestamp_ns,
        value,
    })
}

/// Write an f144 buffer with a double value into `out` (cleared).
pub fn encode_f144(source_name: &str, timestamp_ns: i64, value: f64, out: &mut Vec<u8>) {
    let mut b = FlatBufferBuilder::with_capacity(128);
    let v = b.start_table();
    b.push_slot::<f64>(4, value, 0.0);
    let v = b.end_table(v);
    let name = b.create_string(source_name);
    let t = b.start_table();
    b.push_slot_always(4, name);
    b.push_slot::<i64>(6, timestamp_ns, 0);
    b.push_slot::<u8>(8, 10, 0);
    b.push_slot_always(10, v);
    let root = b.end_table(t);
    b.finish(root, Some(F144_ID));
    out.clear();
    out.extend_from_slice(b.finished_data());
}

/// A rotation stage's logged positions: the angle at a time, linear between the samples around it. Samples may
/// arrive in any order; a time before the first or after the last sample is refused (the stage's position
/// then is not known), as is a stage with fewer than one sample.
#[derive(Debug, Clone, Default)]
pub struct StageLog {
    samples: Vec<(i64, f64)>,
    sorted: bool,
}

impl StageLog {
    /// Add a position (non-finite values are ignored and reported as false).
    pub fn add(&mut self, timestamp_ns: i64, angle_deg: f64) -> bool {
        if !angle_deg.is_finite() {
            return false;
        }
        if self.samples.last().is_some_and(|&(t, _)| t > timestamp_ns) {
            self.sorted = false;
        }
        self.samples.push((timestamp_ns, angle_deg));
        true
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The angle at `t_ns`.
    pub fn at(&self, t_ns: i64) -> Result<f64, String> {
        let s = &self.samples;
        let sorted: std::borrow::Cow<[(i64, f64)]> = if self.sorted || s.is_sorted_by_key(|x| x.0) {
            s.as_slice().into()
        } else {
            let mut v = s.clone();
            v.sort_by_key(|x| x.0);
            v.into()
        };
        let (Some(first), Some(last)) = (sorted.first(), sorted.last()) else {
            return Err("the rotation stage has logged no position yet".into());
        };
        if t_ns < first.0 || t_ns > last.0 {
            return Err(format!(
                "frame time {t_ns} ns is outside the stage's logged positions ({} to {} ns)",
                first.0, last.0
            ));
        }
        let i = sorted.partition_point(|x| x.0 <= t_ns);
        let (t0, a0) = sorted[i - 1];
        if t0 == t_ns || i == sorted.len() {
            return Ok(a0);
        }
        let (t1, a1) = sorted[i];
        Ok(a0 + (a1 - a0) * (t_ns - t0) as f64 / (t1 - t0) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array(data: &[u8], dims: &[i64]) -> Ad00<'static> {
        Ad00 {
            source_name: "det",
            id: 12,
            timestamp_ns: 5_000,
            dimensions: dims.to_vec(),
            data_type: Some(Ad00Type::Uint16),
            data: Box::leak(data.to_vec().into_boxed_slice()),
            attributes: Vec::new(),
        }
    }

    #[test]
    fn an_ad00_frame_round_trips_with_its_attributes() {
        let px: Vec<u8> = [1u16, 2, 3, 4, 5, 6]
            .iter()
            .flat_map(|p| p.to_le_bytes())
            .collect();
        let mut buf = Vec::new();
        encode_ad00(
            &array(&px, &[2, 3]),
            &[
                ("angle", AttributeValue::F64(12.5)),
                ("frame_type", AttributeValue::Text("projection".into())),
                ("epoch", AttributeValue::I64(3)),
            ],
            &mut buf,
        );
        assert!(is_ad00(&buf) && !is_f144(&buf));
        let a = decode_ad00(&buf).unwrap();
        assert_eq!((a.source_name, a.id, a.timestamp_ns), ("det", 12, 5_000));
        assert_eq!(a.dimensions, vec![2, 3]);
        let f = a.frame(None).unwrap();
        assert_eq!(
            (f.rows, f.cols, f.dtype, f.pixels),
            (2, 3, Dtype::U16, &px[..])
        );
        assert_eq!(
            (
                f.info.index,
                f.info.angle_deg,
                f.info.frame_type,
                f.info.epoch
            ),
            (12, 12.5, FrameType::Projection, 3)
        );
        assert_eq!((f.info.first_row, f.info.detector_rows), (0, 2));
    }

    #[test]
    fn frames_without_an_angle_take_the_stages_and_bad_ones_are_named() {
        let px = vec![0u8; 2 * 2 * 2];
        let mut buf = Vec::new();
        encode_ad00(&array(&px, &[1, 2, 2]), &[], &mut buf);
        let a = decode_ad00(&buf).unwrap();
        assert!(a
            .frame(None)
            .unwrap_err()
            .to_string()
            .contains("no angle attribute"));
        let mut stage = StageLog::default();
        stage.add(6_000, 20.0);
        assert!(a
            .frame(Some(&stage))
            .unwrap_err()
            .to_string()
            .contains("outside"));
        stage.add(4_000, 10.0);
        assert_eq!(a.frame(Some(&stage)).unwrap().info.angle_deg, 15.0);
        // Wrong sizes, types and attributes.
        let mut b2 = Vec::new();
        encode_ad00(
            &array(&px, &[3, 2]),
            &[("angle", AttributeValue::F64(1.0))],
            &mut b2,
        );
        assert!(decode_ad00(&b2)
            .unwrap()
            .frame(None)
            .unwrap_err()
            .to_string()
            .contains("data bytes"));
        encode_ad00(
            &array(&px, &[2, 2]),
            &[("frame_type", AttributeValue::Text("white".into()))],
            &mut b2,
        );
        assert!(decode_ad00(&b2)
            .unwrap()
            .frame(None)
            .unwrap_err()
            .to_string()
            .contains("frame_type"));
        encode_ad00(
            &array(&px, &[2, 2]),
            &[("frame_type", AttributeValue::I64(2))],
            &mut b2,
        );
        assert_eq!(
            decode_ad00(&b2)
                .unwrap()
                .frame(None)
                .unwrap()
                .info
                .frame_type,
            FrameType::Dark
        );
        encode_ad00(
            &array(&px, &[2, 2]),
            &[("angle", AttributeValue::F64(f64::NAN))],
            &mut b2,
        );
        assert!(decode_ad00(&b2).unwrap().frame(None).is_err());
        assert!(matches!(
            decode_ad00(b"xxxxf144...."),
            Err(EssError::Identifier(..))
        ));
    }

    #[test]
    fn f144_scalars_round_trip_and_the_stage_interpolates() {
        let mut buf = Vec::new();
        encode_f144("rot", 77, 42.25, &mut buf);
        assert_eq!(
            decode_f144(&buf).unwrap(),
            LogValue {
                source_name: "rot",
                timestamp_ns: 77,
                value: 42.25
            }
        );
        let mut s = StageLog::default();
        assert!(s.at(0).is_err());
        assert!(!s.add(0, f64::INFINITY));
        s.add(100, 90.0);
        s.add(0, 0.0);
        assert_eq!(s.at(25).unwrap(), 22.5);
        assert_eq!(s.at(100).unwrap(), 90.0);
        assert!(s.at(101).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_and_mutated_buffers_never_panic(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            flips in proptest::collection::vec((0usize..400, proptest::num::u8::ANY), 0..8),
        ) {
            let _ = decode_ad00(&bytes);
            let _ = decode_f144(&bytes);
            let px = vec![7u8; 2 * 3 * 2];
            let mut m = Vec::new();
            encode_ad00(&array(&px, &[2, 3]), &[("angle", AttributeValue::F64(3.0))], &mut m);
            let mut f = Vec::new();
            encode_f144("rot", 1, 2.0, &mut f);
            for buf in [&mut m, &mut f] {
                for &(at, v) in &flips {
                    let n = buf.len();
                    buf[at % n] = v;
                }
            }
            if let Ok(a) = decode_ad00(&m) {
                if let Ok(fr) = a.frame(None) {
                    proptest::prop_assert_eq!(
                        fr.pixels.len(),
                        (fr.rows * fr.cols) as usize * fr.dtype.size()
                    );
                }
            }
            let _ = decode_f144(&f);
        }
    }
}
