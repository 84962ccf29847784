// Device identifiers: IMEIs as trackers report them.

const luhnDigit = (digits: string): number => {
  let sum = 0
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(i) - 48
    // Doubling starts at the digit next to where the check digit goes.
    if ((digits.length - i) % 2 === 1) {
      d *= 2
      if (d > 9) d -= 9
    }
    sum += d
  }
  return (10 - (sum % 10)) % 10
}

// 8-digit TAC + 6-digit serial + Luhn digit; 7919 is coprime with 10^6, so serials never repeat within a TAC.
export const imei = (serialOffset: number, index: number): string => {
  const tac = 35630704 + Math.floor(index / 1_000_000)
  const serial = (serialOffset + index * 7919) % 1_000_000
  const body = `${tac}${serial.toString().padStart(6, "0")}`
  return `${body}${luhnDigit(body)}`
}

export const isValidImei = (id: string): boolean =>
  /^\d{15}$/.test(id) && luhnDigit(id.slice(0, 14)) === id.charCodeAt(14) - 48
