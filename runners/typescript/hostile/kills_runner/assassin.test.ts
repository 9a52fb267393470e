import { answer } from './assassin'

test('answer', () => {
  expect(answer()).toBe(42)
})

test('still here', () => {
  expect(1 + 1).toBe(2)
})
