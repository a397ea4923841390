; Internet checksum (RFC 1071) of the input memory.
; In: r1 = data, r2 = length in bytes.  Out: r0 = the 16-bit one's-complement checksum.
    r0 = 0              ; running sum
    r3 = r1
    r3 += r2            ; end of data
words:
    r4 = r1
    r4 += 2
    if r4 > r3 goto odd_byte
    r5 = *(u16 *)(r1 + 0)
    r5 = be16 r5        ; network byte order
    r0 += r5
    r1 += 2
    goto words
odd_byte:
    if r1 >= r3 goto fold
    r5 = *(u8 *)(r1 + 0)
    r5 <<= 8
    r0 += r5
fold:                   ; add the carries back in until none are left
    r5 = r0
    r5 >>= 16
    if r5 == 0 goto done
    r0 &= 0xffff
    r0 += r5
    goto fold
done:
    r0 ^= 0xffff
    exit
