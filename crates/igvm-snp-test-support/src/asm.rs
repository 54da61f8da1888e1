//! Hand-assembled test guests. Every instruction's bytes are listed with
//! its mnemonic. The same encodings run in 32-bit protected mode and in
//! 64-bit long mode: no REX prefixes are needed, `mov r32, imm32`
//! zero-extends in 64-bit mode, and `lodsb`/`loop` use RSI/RCX there.

/// A growing code buffer that knows the address it will be loaded at.
#[derive(Debug)]
pub struct Code {
    base: u32,
    bytes: Vec<u8>,
    /// Strings to append after the code, with the position of the 32-bit
    /// immediate that must hold each one's address.
    strings: Vec<(usize, String)>,
}

impl Code {
    /// Code to be loaded at `base`.
    pub fn new(base: u32) -> Self {
        Code {
            base,
            bytes: Vec::new(),
            strings: Vec::new(),
        }
    }

    /// Current position (offset from `base`).
    pub fn here(&self) -> usize {
        self.bytes.len()
    }

    /// Appends raw bytes.
    pub fn emit(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// Appends a 2-byte short jump opcode `op` (EB jmp, E2 loop, 74 jz, …)
    /// back to `target` (an earlier position).
    pub fn short_back(&mut self, op: u8, target: usize) {
        let rel = target as i64 - (self.here() as i64 + 2);
        assert!((-128..0).contains(&rel), "short jump out of range");
        self.emit(&[op, rel as i8 as u8]);
    }

    /// Prints `label` to port 0x3F8, then EBX as eight upper-case hex
    /// digits and a newline. Clobbers EAX, ECX, EDX, ESI; keeps EBX.
    pub fn print_ebx(&mut self, label: &str) {
        self.emit(&[0xBA, 0xF8, 0x03, 0x00, 0x00]); // mov edx, 0x3F8
        self.emit(&[0xBE]); // mov esi, imm32
        self.strings.push((self.here(), label.to_string()));
        self.emit(&[0, 0, 0, 0]); //   = address of the label (patched in `page`)
        let print = self.here();
        self.emit(&[0xAC]); // lodsb          (al = [esi], esi += 1)
        self.emit(&[0x84, 0xC0]); // test al, al
        self.emit(&[0x74, 0x03]); // jz +3           (over out and jmp)
        self.emit(&[0xEE]); // out dx, al
        self.short_back(0xEB, print); // jmp print  (EB F8)
        self.emit(&[0xB9, 0x08, 0x00, 0x00, 0x00]); // mov ecx, 8
        let hex = self.here();
        self.emit(&[0xC1, 0xC3, 0x04]); // rol ebx, 4  (next digit to the bottom)
        self.emit(&[0x88, 0xD8]); // mov al, bl
        self.emit(&[0x24, 0x0F]); // and al, 0x0F
        self.emit(&[0x04, 0x30]); // add al, '0'
        self.emit(&[0x3C, 0x39]); // cmp al, '9'
        self.emit(&[0x76, 0x02]); // jbe +2         (over add al, 7)
        self.emit(&[0x04, 0x07]); // add al, 7      ('A' - '9' - 1)
        self.emit(&[0xEE]); // out dx, al
        self.short_back(0xE2, hex); // loop hex     (E2 EE)
        self.emit(&[0xB0, 0x0A]); // mov al, '\n'
        self.emit(&[0xEE]); // out dx, al
    }

    /// Halts for good: `hlt; jmp back to the hlt` (F4 EB FD).
    pub fn halt(&mut self) {
        let halt = self.here();
        self.emit(&[0xF4]); // hlt
        self.short_back(0xEB, halt); // jmp halt (EB FD)
    }

    /// The code, followed by its NUL-terminated strings (their addresses
    /// patched in), as a 4 KiB page.
    pub fn page(&self) -> Vec<u8> {
        let mut bytes = self.bytes.clone();
        for (fixup, text) in &self.strings {
            let addr = self.base + bytes.len() as u32;
            bytes[*fixup..*fixup + 4].copy_from_slice(&addr.to_le_bytes());
            bytes.extend_from_slice(text.as_bytes());
            bytes.push(0);
        }
        assert!(bytes.len() <= 4096);
        bytes.resize(4096, 0);
        bytes
    }
}

/// A flat-mode (32- or 64-bit) guest loaded at `base`: it sums the 4096
/// bytes at `data` into EBX, prints `prefix` and EBX in hex to port 0x3F8,
/// and halts.
pub fn sum_and_print(base: u32, data: u32, prefix: &str) -> Vec<u8> {
    let mut c = Code::new(base);
    c.emit(&[0xBE]); // mov esi, imm32
    c.emit(&data.to_le_bytes()); //   = data
    c.emit(&[0xB9, 0x00, 0x10, 0x00, 0x00]); // mov ecx, 0x1000
    c.emit(&[0x31, 0xDB]); // xor ebx, ebx
    c.emit(&[0x31, 0xC0]); // xor eax, eax
    let sum = c.here();
    c.emit(&[0xAC]); // lodsb            (al = [esi], esi += 1)
    c.emit(&[0x01, 0xC3]); // add ebx, eax
    c.short_back(0xE2, sum); // loop sum     (E2 FB)
    c.print_ebx(prefix);
    c.halt();
    c.page()
}

/// A guest that spins forever: `jmp $` (EB FE).
pub fn spin_forever() -> Vec<u8> {
    let mut c = Code::new(0);
    let here = c.here();
    c.short_back(0xEB, here); // jmp $ (EB FE)
    c.page()
}

/// A flat-mode guest that stores `value` to the absolute address `gpa`
/// (unmapped in the tests), then halts.
pub fn store_to(gpa: u32, value: u32) -> Vec<u8> {
    let mut c = Code::new(0);
    c.emit(&[0xC7, 0x05]); // mov dword [disp32], imm32
    c.emit(&gpa.to_le_bytes()); //   disp32 = gpa
    c.emit(&value.to_le_bytes()); //   imm32 = value
    c.emit(&[0xF4]); // hlt
    c.page()
}

/// A 32-bit flat GDT: null, code (selector 0x08), data (0x10).
pub fn gdt32() -> Vec<u8> {
    gdt(&[0, 0x00CF_9B00_0000_FFFF, 0x00CF_9300_0000_FFFF])
}

/// A 64-bit GDT: null, 64-bit code (0x08), data (0x10).
pub fn gdt64() -> Vec<u8> {
    gdt(&[0, 0x00AF_9B00_0000_FFFF, 0x00CF_9300_0000_FFFF])
}

fn gdt(entries: &[u64]) -> Vec<u8> {
    let mut page = vec![0u8; 4096];
    for (i, e) in entries.iter().enumerate() {
        page[i * 8..i * 8 + 8].copy_from_slice(&e.to_le_bytes());
    }
    page
}

/// A page-table page whose entries `(index, value)` are set, the rest 0.
pub fn table(entries: &[(usize, u64)]) -> Vec<u8> {
    let mut page = vec![0u8; 4096];
    for (i, e) in entries {
        page[i * 8..i * 8 + 8].copy_from_slice(&e.to_le_bytes());
    }
    page
}
