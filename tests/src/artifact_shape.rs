//! What a component asks of the host per instance, read from its bytes: the
//! core modules it instantiates, their linear memories (initial size, stack,
//! data segments) and tables. Every request pays for all of them in Spin.

use anyhow::Result;
use wasmparser::{ConstExpr, Operator, Parser, Payload};

/// One core module inside a component.
#[derive(Debug, Default, Clone)]
pub struct CoreModule {
    /// Defined (not imported) memories: initial bytes of each.
    pub memories: Vec<u64>,
    /// Defined tables.
    pub tables: usize,
    /// Bytes of active and passive data segments.
    pub data_bytes: u64,
    /// The initial stack pointer (the first mutable i32 global) when the
    /// module defines a memory: with the stack first in memory, its size.
    pub stack_bytes: Option<u64>,
}

/// A component's whole shape, nested components included.
#[derive(Debug, Default, Clone)]
pub struct Shape {
    pub modules: Vec<CoreModule>,
    /// Core instances created by instantiating a module (not bags of exports).
    pub core_instantiations: usize,
}

impl Shape {
    pub fn memories(&self) -> usize {
        self.modules.iter().map(|m| m.memories.len()).sum()
    }

    pub fn tables(&self) -> usize {
        self.modules.iter().map(|m| m.tables).sum()
    }

    pub fn initial_memory_bytes(&self) -> u64 {
        self.modules.iter().flat_map(|m| m.memories.iter()).sum()
    }

    pub fn data_bytes(&self) -> u64 {
        self.modules.iter().map(|m| m.data_bytes).sum()
    }
}

const WASM_PAGE: u64 = 65_536;

pub fn shape(wasm: &[u8]) -> Result<Shape> {
    let mut shape = Shape::default();
    let mut current: Option<CoreModule> = None;
    // Depth of nested core modules' sections: a module's `End` closes it.
    let mut module_depth = 0usize;
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::ModuleSection { .. } => {}
            Payload::Version { encoding, .. } => {
                depth += 1;
                if encoding == wasmparser::Encoding::Module {
                    module_depth = depth;
                    current = Some(CoreModule::default());
                }
            }
            Payload::End(_) => {
                if depth == module_depth {
                    if let Some(m) = current.take() {
                        shape.modules.push(m);
                    }
                    module_depth = 0;
                }
                depth = depth.saturating_sub(1);
            }
            Payload::InstanceSection(reader) => {
                for instance in reader {
                    if let wasmparser::Instance::Instantiate { .. } = instance? {
                        shape.core_instantiations += 1;
                    }
                }
            }
            Payload::MemorySection(reader) => {
                if let Some(m) = current.as_mut() {
                    for memory in reader {
                        m.memories.push(memory?.initial * WASM_PAGE);
                    }
                }
            }
            Payload::TableSection(reader) => {
                if let Some(m) = current.as_mut() {
                    m.tables += reader.count() as usize;
                }
            }
            Payload::GlobalSection(reader) => {
                if let Some(m) = current.as_mut() {
                    for global in reader {
                        let global = global?;
                        if global.ty.mutable && m.stack_bytes.is_none() {
                            m.stack_bytes = const_i32(&global.init_expr);
                        }
                    }
                }
            }
            Payload::DataSection(reader) => {
                if let Some(m) = current.as_mut() {
                    for data in reader {
                        m.data_bytes += data?.data.len() as u64;
                    }
                }
            }
            _ => {}
        }
    }
    // A stack pointer only means something where there is a memory.
    for m in &mut shape.modules {
        if m.memories.is_empty() {
            m.stack_bytes = None;
        }
    }
    Ok(shape)
}

fn const_i32(expr: &ConstExpr<'_>) -> Option<u64> {
    match expr.get_operators_reader().read().ok()? {
        Operator::I32Const { value } => u64::try_from(value).ok(),
        _ => None,
    }
}
