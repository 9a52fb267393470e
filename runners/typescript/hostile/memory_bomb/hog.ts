export const eat = (): number => {
  const chunks: Buffer[] = []
  for (;;) chunks.push(Buffer.alloc(16 << 20, 1))
}
