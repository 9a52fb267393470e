import { answer } from './litter'

it('answers', () => {
  expect(answer()).toBe(42)
})
