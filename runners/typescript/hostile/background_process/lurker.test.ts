import { answer } from './lurker'

it('answers', () => {
  expect(answer()).toBe(42)
})
