import { go } from './bomb'

it('goes', () => {
  expect(go()).toBe(true)
})
